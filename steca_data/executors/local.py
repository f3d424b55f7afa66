"""The local executor: one process, simulator sessions on threads, every episode in flight beside one engine.

This is how builds ran before executors existed, moved here from the stages: a ``SessionPool`` of
``env.workers`` threads for environment work, a thread pool for I/O-bound calls, and the episode runner
with up to ``executor.max_active`` episodes in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from steca_data.envs import EnvBackend, SessionPool
from steca_data.envs.registry import make_backend
from steca_data.envs.spec import EnvSpec
from steca_data.episodes.runner import EpisodeError, EpisodeStart, run_episodes
from steca_data.executors.base import Executor, FollowUp, OnResult, PlayJob


class LocalExecutor(Executor):
    kind = "local"

    def __init__(
        self,
        env: EnvSpec,
        workers: int,
        max_active: int = 256,
        schedule: str = "continuous",
        on_start: Callable[[], None] | None = None,
    ):
        self.env, self.workers, self.max_active, self.schedule = env, workers, max_active, schedule
        self._on_start = on_start  # called after each environment start (fault injection in tests)
        self._backend: EnvBackend | None = None

    @property
    def backend(self) -> EnvBackend:
        """Started on first use, so a fully cached build never launches a simulator."""
        if self._backend is None:
            self._backend = make_backend(self.env)
            if self._on_start is not None:
                self._on_start()
        return self._backend

    def restart(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def use_env(self, env: EnvSpec) -> None:
        if env is not self.env:
            self.restart()
            self.env = env

    def close(self) -> None:
        self.restart()

    def map_sessions(self, fn: Callable, items: list, on_result: OnResult) -> None:
        backend = self.backend
        with SessionPool(backend, self.workers) as pool:
            for item, outcome in pool.imap_unordered(lambda session, item: fn(backend, session, item), items):
                on_result(item, outcome)

    def map_calls(self, fn: Callable, items: list, workers: int, on_result: OnResult) -> None:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                on_result(futures[future], future.exception() or future.result())

    def play(self, job: PlayJob, starts: list[EpisodeStart], on_result: OnResult, follow_up: FollowUp | None) -> None:
        play_here(self.backend, self.workers, job, job.source.policy, starts, on_result, follow_up,
                  self.max_active, self.schedule)  # fmt: skip


def play_here(backend, workers, job: PlayJob, policy, starts, on_result, follow_up, max_active, schedule,
              pool: SessionPool | None = None) -> None:  # fmt: skip
    """The episode runner on this process: a session pool on ``backend`` (``pool``: one the caller keeps,
    shared by concurrent calls), results and failures to ``on_result`` (the one loop both executors'
    episodes go through)."""
    with contextlib.nullcontext(pool) if pool is not None else SessionPool(backend, workers) as pool:
        try:
            run_episodes(
                pool,
                policy,
                starts,
                job.params,
                max_steps=job.max_steps,
                prompt=job.prompt,
                on_done=on_result,
                source=job.kind,
                max_active=max_active,
                schedule=schedule,
                follow_up=follow_up,
            )
        except EpisodeError as exc:
            for i, error in sorted(exc.failures.items()):
                on_result(i, error)
