"""The stage template and the context stages run in.

A stage declares four things: its *units* (each with a content key), the table its rows live in, how to
*compute* a batch of units (calling ``emit`` as each one finishes) and how to *store* one result. The run
loop — cache lookup, progress, storing, failures, the kill switch — is written once, here, and serves every
build stage and evaluation alike (datatrove's ``PipelineStep`` is the model: a filter writes only
``filter(doc)``).

Stages never reach into each other: what one stage makes for the next is a typed *output* (``output``),
which the executor publishes on the context and later stages ``ctx.get`` by type. An output is computable
from the cache alone, so ``plan`` can show later stages as if earlier ones had run.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from steca_data.cache.store import Cache
from steca_data.core.progress import Reporter
from steca_data.core.schemas import Task
from steca_data.envs import EnvBackend
from steca_data.envs.registry import env_version, list_tasks, make_backend
from steca_data.recipe.model import Recipe

KILL_AFTER_ENV = "STECA_DATA_KILL_AFTER_UNITS"
T = TypeVar("T")


@dataclass
class StagePlan:
    stage: str
    total: int
    cached: int
    note: str = ""

    @property
    def to_compute(self) -> int:
        return self.total - self.cached


@dataclass
class StageResult:
    stage: str
    computed: int = 0
    cached: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Unit:
    """One expensive piece of work: its cache key, the task it belongs to, and what the stage needs."""

    key: str
    task_id: str
    item: Any = None


Emit = Callable[[Unit, Any], None]


class MissingInput(RuntimeError):
    """A stage asked for an output no earlier stage published (a wiring error in the stage list)."""


class BuildContext:
    """What stages share: the recipe, the cache, the reporter, published outputs and a lazy environment."""

    def __init__(self, recipe: Recipe, cache: Cache, reporter: Reporter | None = None, retry_failed: bool = False):
        self.recipe = recipe
        self.cache = cache
        self.reporter = reporter or Reporter(quiet=True)
        self.retry_failed = retry_failed
        self._backend: EnvBackend | None = None
        self._outputs: dict[type, object] = {}
        self._units_done = 0
        kill_after = os.environ.get(KILL_AFTER_ENV)
        self._kill_after = int(kill_after) if kill_after else None

    # ------------------------------------------------------------------------------------ stage outputs
    def publish(self, value: object) -> None:
        """Make a stage's output available to later stages, keyed by its type."""
        if value is not None:
            self._outputs[type(value)] = value

    def get(self, kind: type[T]) -> T:
        if kind not in self._outputs:
            raise MissingInput(f"no stage published a {kind.__name__} before it was needed")
        return self._outputs[kind]  # type: ignore[return-value]

    def find(self, kind: type[T]) -> T | None:
        return self._outputs.get(kind)  # type: ignore[return-value]

    def derive(self, kind: type[T], make: Callable[[BuildContext], T]) -> T:
        """A value computed once from published outputs (e.g. the engine's walks) and shared."""
        if kind not in self._outputs:
            self._outputs[kind] = make(self)
        return self._outputs[kind]  # type: ignore[return-value]

    # -------------------------------------------------------------------------------------------- units
    def unit_done(self) -> None:
        """Called after each unit is stored. ``STECA_DATA_KILL_AFTER_UNITS=N`` SIGKILLs the process after N
        units: the fault injection the resume tests use, as real as a crash gets."""
        self._units_done += 1
        if self._kill_after is not None and self._units_done >= self._kill_after:
            self.cache.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    # ------------------------------------------------------------------------------------- environment
    @property
    def env_version(self) -> str:
        return env_version(self.recipe.env)

    @cached_property
    def tasks(self) -> dict[str, list[Task]]:
        return {name: list_tasks(self.recipe.env, name) for name in self.recipe.env.splits}

    @property
    def backend(self) -> EnvBackend:
        """Started on first use, so a fully cached build never launches a simulator."""
        if self._backend is None:
            self._backend = make_backend(self.recipe.env)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class Stage(ABC):
    """The template every stage fills in; ``plan`` and ``run`` are written once, here."""

    name: ClassVar[str]
    table: ClassVar[str]  # where a unit's row lives: a unit is cached when its key is in this table
    label: ClassVar[str] = ""  # progress bar title (default: the stage name)
    unit_name: ClassVar[str] = "units"
    records_failures: ClassVar[bool] = True  # failed units go to the failures table (else: raise)

    @abstractmethod
    def units(self, ctx: BuildContext) -> list[Unit]:
        """Every unit this stage would have, computed or not; keys depend only on inputs."""

    @abstractmethod
    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        """Compute ``todo``; call ``emit(unit, result_or_exception)`` the moment each one finishes."""

    @abstractmethod
    def store(self, ctx: BuildContext, unit: Unit, result: Any) -> bool:
        """Write one result; return False when it was stored as a failed outcome (e.g. an unusable reply)."""

    def output(self, ctx: BuildContext) -> object | None:
        """What later stages need from this one (published by the executor after plan and run)."""
        return None

    def waiting_for(self, ctx: BuildContext) -> str | None:
        """Why the units cannot be listed yet (an earlier stage must run first), for ``plan``."""
        return None

    def note(self, ctx: BuildContext) -> str:
        return ""

    def prepare(self, ctx: BuildContext) -> None:  # noqa: B027 - optional hook, empty by default
        """Cheap bookkeeping before units are listed (e.g. registering the recipe's tasks)."""

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        done = ctx.cache.existing(self.table, keys)
        if self.records_failures and not ctx.retry_failed:
            done |= ctx.cache.existing("failures", keys)
        return done

    # -------------------------------------------------------------------------------------- the loop
    def plan(self, ctx: BuildContext) -> StagePlan:
        waiting = self.waiting_for(ctx)
        if waiting:
            return StagePlan(self.name, 0, 0, waiting)
        keys = [u.key for u in self.units(ctx)]
        return StagePlan(self.name, len(keys), len(self.done(ctx, keys)), self.note(ctx))

    def run(self, ctx: BuildContext) -> StageResult:
        self.prepare(ctx)
        units = self.units(ctx)
        done = self.done(ctx, [u.key for u in units])
        todo = [u for u in units if u.key not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if not todo:
            return result
        with ctx.reporter.track(self.label or self.name, len(todo), self.unit_name) as advance:

            def emit(unit: Unit, value: Any) -> None:
                if isinstance(value, BaseException):
                    if not self.records_failures:
                        raise value
                    ctx.cache.put_failure(self.name, unit.key, unit.task_id, f"{type(value).__name__}: {value}")
                    result.failed += 1
                else:
                    if ctx.retry_failed:
                        ctx.cache.clear_failure(unit.key)
                    ok = self.store(ctx, unit, value)
                    result.computed += int(ok)
                    result.failed += int(not ok)
                ctx.unit_done()
                advance()

            self.compute(ctx, todo, emit)
        return result
