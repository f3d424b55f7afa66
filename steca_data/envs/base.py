"""The environment protocol every backend implements, and a thread pool of simulator sessions.

A *backend* knows the tasks of a recipe and owns shared resources (one JVM for TextWorldExpress); a
*session* is one simulator instance that plays one episode at a time. Sessions are cheap to make and are
driven from worker threads, so many episodes advance at once without one process per episode.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from steca_data.core.schemas import Step, Task

T = TypeVar("T")
R = TypeVar("R")


class EnvError(RuntimeError):
    """The environment could not play a task (bad game, crashed simulator, unsolvable gold path)."""


@dataclass
class StepResult:
    observation: str
    score: float = 0.0
    done: bool = False
    success: bool = False
    admissible: list[str] = field(default_factory=list)
    valid: bool | None = None


def as_step(action: str, result: StepResult, thought: str = "") -> Step:
    """The recorded step: the move that was played and what the environment answered."""
    return Step(
        thought=thought,
        action=action,
        observation=result.observation,
        reward=result.score,
        done=result.done,
        valid=result.valid,
    )


class EnvSession(Protocol):
    def reset(self, task: Task) -> StepResult: ...

    def step(self, action: str) -> StepResult: ...

    def instruction(self) -> str: ...

    def close(self) -> None: ...


class PlanningSession(EnvSession, Protocol):
    """A session whose environment can plan from any state (its plugin's ``planner`` says which planner).

    What ground-truth labels and the ε-expert policy read; sessions of environments without a planner
    simply lack ``remaining_plan``."""

    def remaining_plan(self) -> list[str] | None:
        """The planner's shortest plan from the current state: [] at the goal, None when none exists."""
        ...


class NoPlanner(EnvError):
    """A planner was asked of an environment that has none (the recipe check should have said so first)."""


def remaining_plan(session: EnvSession) -> list[str] | None:
    """``session.remaining_plan()``, or ``NoPlanner`` naming the session's type when it cannot plan."""
    plan = getattr(session, "remaining_plan", None)
    if plan is None:
        raise NoPlanner(f"{type(session).__name__} has no planner (labels and the eps_expert policy need one)")
    return plan()


class EnvBackend(Protocol):
    name: str
    version: str

    def tasks(self, split_name: str) -> list[Task]: ...

    def new_session(self) -> EnvSession: ...

    def gold_actions(self, session: EnvSession, task: Task) -> list[str]:
        """Expert actions for ``task``; leaves ``session`` reset at the start of that task."""
        ...

    def close(self) -> None: ...


def replay(session: EnvSession, task: Task, actions: Iterable[str]) -> StepResult:
    """Reset to ``task`` and replay a prefix of actions; returns the state after the last one."""
    result = session.reset(task)
    for action in actions:
        result = session.step(action)
    return result


class SessionPool:
    """Runs ``fn(session, item)`` over items on ``workers`` threads, one simulator session per thread.

    Results are yielded in completion order as ``(item, result_or_exception)`` so the caller can store
    each unit the moment it exists and record failures without stopping the build.
    """

    def __init__(self, backend: EnvBackend, workers: int):
        self.backend = backend
        self.workers = workers
        self._local = threading.local()
        self._sessions: list[EnvSession] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="env")

    def _session(self) -> EnvSession:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self.backend.new_session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _call(self, fn: Callable[[EnvSession, T], R], item: T) -> R:
        return fn(self._session(), item)

    def imap_unordered(
        self, fn: Callable[[EnvSession, T], R], items: Iterable[T]
    ) -> Iterator[tuple[T, R | BaseException]]:
        futures: dict[Future, T] = {self._executor.submit(self._call, fn, item): item for item in items}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            item = futures[future]
            exc = future.exception()
            yield item, (exc if exc is not None else future.result())

    def submit(self, fn: Callable[[T], R], item: T) -> Future:
        """Run ``fn(item)`` on an environment thread (for work that brings its own session, e.g. an episode)."""
        return self._executor.submit(fn, item)

    def map(self, fn: Callable[[EnvSession, T], R], items: list[T]) -> list[R]:
        """Ordered results; exceptions propagate (use for lock-step batches where all must succeed)."""
        return list(self._executor.map(lambda item: self._call(fn, item), items))

    def close(self) -> None:
        # queued units are dropped (an interrupted or failed stage stops now; what ran is already stored)
        self._executor.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            with contextlib.suppress(Exception):  # closing is best effort
                session.close()

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
