"""The stage template and the context stages run in.

A stage declares four things: its *units* (each with a content key), the table its rows live in, how to
*compute* a batch of units (calling ``emit`` as each one finishes) and how to *store* one result. The run
loop — cache lookup, progress, storing, failures and their retries, the kill switch — is written once, here,
and serves every build stage and evaluation alike (datatrove's ``PipelineStep`` is the model: a filter
writes only ``filter(doc)``).

Failures: a transient one (the simulator died, a connection dropped, a server said 429/5xx) is retried
within the build, after a backoff and with a fresh environment, up to ``failures.attempts`` times; what
still fails goes to the ``failures`` table with its error, counts against ``failures.max_rate``, and is
computed again by the next build unless the recipe says ``failures.retry: false``.

Stages never reach into each other: what one stage makes for the next is a typed *output* (``output``,
of the types in ``gives``), which the builder publishes on the context; a later stage reads it with
``ctx.get`` / ``ctx.find`` only when it declares the type in ``needs`` (or ``may_read``), and the builder
checks every stage list for that wiring before any work. An output is computable from the cache alone, so
``plan`` can show later stages as if earlier ones had run. A stage's tables are declared beside it
(``tables``); nothing outside the stage writes their schema.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from rich.markup import escape

from steca_data.cache.store import Cache, Table
from steca_data.core.cpu import cpu_times, stolen_share
from steca_data.core.failures import describe, is_transient
from steca_data.core.progress import Reporter
from steca_data.core.schemas import Task
from steca_data.envs import EnvBackend
from steca_data.envs.registry import env_version, list_tasks
from steca_data.envs.spec import EnvSpec
from steca_data.executors import Executor
from steca_data.executors.factory import make_executor
from steca_data.recipe.model import Recipe

T = TypeVar("T")


@dataclass
class StagePlan:
    stage: str
    total: int
    cached: int
    note: str = ""
    failed: int = 0  # units that failed in an earlier build and are not stored (retried unless told not to)

    @property
    def to_compute(self) -> int:
        return self.total - self.cached


@dataclass
class StageResult:
    stage: str
    computed: int = 0
    cached: int = 0
    failed: int = 0  # what the summary reports (a stage may add e.g. skipped records)
    notes: list[str] = field(default_factory=list)
    units: int = 0  # units the stage lists
    unit_failures: int = 0  # of those, units that failed in this build after retries
    first_error: str = ""
    seconds: float = 0.0  # wall time of the stage in this build (shown in the summary, never stored)
    stolen: float | None = None  # share of CPU time other tenants of the VM took meanwhile (core.cpu)

    @property
    def failure_rate(self) -> float:
        return self.unit_failures / self.units if self.units else 0.0


@dataclass(frozen=True)
class Unit:
    """One expensive piece of work: its cache key, the task it belongs to, and what the stage needs."""

    key: str
    task_id: str
    item: Any = None


class Emit:
    """What ``compute`` calls: ``emit(unit, result_or_exception)`` the moment each unit finishes, and
    ``emit.more(n)`` when finished units list n new units of the same stage (they join its progress bar)."""

    def __init__(self, on_result: Callable[[Unit, Any], None], on_more: Callable[[int], None] | None = None):
        self._on_result, self._on_more = on_result, on_more

    def __call__(self, unit: Unit, value: Any) -> None:
        self._on_result(unit, value)

    def more(self, count: int) -> None:
        if self._on_more is not None and count:
            self._on_more(count)


class MissingInput(RuntimeError):
    """A stage asked for an output no earlier stage published (a wiring error in the stage list)."""


class UndeclaredInput(RuntimeError):
    """A stage read an output it does not declare in ``needs`` or ``may_read`` (a wiring error)."""


class EnvResolution:
    """An output that resolves the recipe's env section for the rest of the build (e.g. points it at data the
    build generated): publishing it makes the context play ``env``."""

    env: EnvSpec


def publish_output(ctx: BuildContext, stage: Stage) -> None:
    """Publish ``stage``'s output, checking it is of the types the stage declares in ``gives``."""
    with ctx.reading_as(stage):
        out = stage.output(ctx)
    for value in out if isinstance(out, tuple) else (out,):
        if value is None:
            continue
        if type(value) not in stage.gives:
            raise UndeclaredInput(f"stage {stage.name} gives a {type(value).__name__} it does not declare in gives")
        ctx.publish(value)
        if isinstance(value, EnvResolution):
            ctx.play_env(value.env)


def check_wiring(stages: list[Stage]) -> None:
    """Every output a stage needs is given by a stage before it: a wiring error is found when the stage list
    is compiled, not deep into a build."""
    given: set[type] = set()
    for stage in stages:
        missing = [kind.__name__ for kind in stage.needs if kind not in given]
        if missing:
            raise MissingInput(f"stage {stage.name} needs {', '.join(missing)}, which no stage before it gives")
        given.update(stage.gives)


@dataclass(frozen=True)
class BuildHooks:
    """Callbacks the build loop fires, for whoever runs the build (e.g. the fault injection of the resume
    tests): stages and the context know nothing of what they do."""

    unit_stored: Callable[[Callable[[], None]], None] | None = None  # (flush the cache) after each stored unit
    environment_started: Callable[[], None] | None = None  # each time a fresh environment starts


class BuildContext:
    """What stages share: the recipe, the cache, the reporter, published outputs and a lazy environment."""

    def __init__(
        self,
        recipe: Recipe,
        cache: Cache,
        reporter: Reporter | None = None,
        retry_failed: bool = False,
        executor: Executor | None = None,
        hooks: BuildHooks | None = None,
    ):
        self.recipe = recipe
        self.cache = cache
        self.reporter = reporter or Reporter(quiet=True)
        # units recorded as failed by an earlier build are computed again, unless the recipe says not to
        self.retry_failed = retry_failed or recipe.failures.retry
        self._outputs: dict[type, object] = {}
        self._reader: Stage | None = None  # the stage running now: it reads only the outputs it declares
        self.hooks = hooks or BuildHooks()
        # the recipe's env section as this build plays it: an earlier stage may have generated its data
        self.env: EnvSpec = recipe.env
        # where units run (placement, concurrency, the environment): one process unless the build says otherwise
        self.executor = executor or make_executor(recipe, on_start=self.hooks.environment_started)

    # ------------------------------------------------------------------------------------ stage outputs
    def publish(self, value: object) -> None:
        """Make a stage's output available to later stages, keyed by its type."""
        if value is not None:
            self._outputs[type(value)] = value

    @contextmanager
    def reading_as(self, stage: Stage) -> Iterator[BuildContext]:
        """While ``stage`` plans or runs, it may read only the outputs it declares."""
        outer, self._reader = self._reader, stage
        try:
            yield self
        finally:
            self._reader = outer

    def _check_declared(self, kind: type) -> None:
        reader = self._reader
        if reader is not None and kind not in reader.needs and kind not in reader.may_read:
            raise UndeclaredInput(
                f"stage {reader.name} reads {kind.__name__} without declaring it in needs or may_read"
            )

    def get(self, kind: type[T]) -> T:
        self._check_declared(kind)
        if kind not in self._outputs:
            raise MissingInput(f"no stage published a {kind.__name__} before it was needed")
        return self._outputs[kind]  # type: ignore[return-value]

    def find(self, kind: type[T]) -> T | None:
        self._check_declared(kind)
        return self._outputs.get(kind)  # type: ignore[return-value]

    def derive(self, kind: type[T], make: Callable[[BuildContext], T]) -> T:
        """A value computed once from published outputs (e.g. the engine's walks) and shared."""
        if kind not in self._outputs:
            self._outputs[kind] = make(self)
        return self._outputs[kind]  # type: ignore[return-value]

    # -------------------------------------------------------------------------------------------- units
    def unit_done(self) -> None:
        """Called after each unit is stored (the hook may flush the cache first)."""
        if self.hooks.unit_stored is not None:
            self.hooks.unit_stored(self.cache.flush)

    # ------------------------------------------------------------------------------------- environment
    @property
    def env_version(self) -> str:
        return env_version(self.env)

    def play_env(self, env: EnvSpec) -> None:
        """Play ``env`` from now on (the recipe's section resolved by an earlier stage, e.g. pointed at the
        games it generated); the recipe itself is never changed."""
        self.env = env
        self.__dict__.pop("tasks", None)
        self.executor.use_env(env)

    @cached_property
    def tasks(self) -> dict[str, list[Task]]:
        return {name: list_tasks(self.env, name) for name in self.env.splits}

    @property
    def backend(self) -> EnvBackend:
        """This process's environment, started on first use (a fully cached build launches no simulator)."""
        return self.executor.backend

    def restart_environment(self) -> None:
        """Drop the simulator (it may have crashed); the next use starts a fresh one."""
        self.executor.restart()

    def close(self) -> None:
        self.executor.close()


class Stage(ABC):
    """The template every stage fills in; ``plan`` and ``run`` are written once, here."""

    name: ClassVar[str]
    table: ClassVar[str]  # where a unit's row lives: a unit is cached when its key is in this table
    label: ClassVar[str] = ""  # progress bar title (default: the stage name)
    unit_name: ClassVar[str] = "units"
    records_failures: ClassVar[bool] = True  # failed units go to the failures table (else: raise)
    # units listed from this stage's own stored results (first-deviation rollouts): the run loop makes passes
    # until one lists nothing new; a unit a pass already tried is not tried again in this build
    settles: ClassVar[bool] = False
    # the wiring: outputs of earlier stages this one reads (the stage list is checked for a stage giving each),
    # outputs it reads when some stage published them (e.g. the imported tasks), and what ``output`` gives
    needs: ClassVar[tuple[type, ...]] = ()
    may_read: ClassVar[tuple[type, ...]] = ()
    gives: ClassVar[tuple[type, ...]] = ()
    tables: ClassVar[tuple[Table, ...]] = ()  # the tables (and views) this stage's rows live in
    tried: frozenset[str] = frozenset()  # keys earlier passes of this build listed (settling stages)

    @abstractmethod
    def units(self, ctx: BuildContext) -> list[Unit]:
        """Every unit this stage would have, computed or not; keys depend only on inputs."""

    @abstractmethod
    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        """Compute ``todo``; call ``emit(unit, result_or_exception)`` the moment each one finishes."""

    @abstractmethod
    def store(self, ctx: BuildContext, unit: Unit, result: Any) -> bool:
        """Write one result; return False when it was stored as a failed outcome (e.g. an unusable reply)."""

    def output(self, ctx: BuildContext) -> object | tuple[object, ...] | None:
        """What later stages need from this one, of the types in ``gives`` (one value or a tuple; published
        by the builder after plan and run)."""
        return None

    def waiting_for(self, ctx: BuildContext) -> str | None:
        """Why the units cannot be listed yet (an earlier stage must run first), for ``plan``."""
        return None

    def note(self, ctx: BuildContext) -> str:
        return ""

    def prepare(self, ctx: BuildContext) -> None:  # noqa: B027 - optional hook, empty by default
        """Cheap bookkeeping before units are listed (e.g. registering the recipe's tasks)."""

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        """Keys that need no computing: stored, or failed before when failures are final (retry: false)."""
        done = ctx.cache.existing(self.table, keys)
        if self.records_failures and not ctx.retry_failed:
            done |= ctx.cache.existing("failures", keys)
        return done | (self.tried & set(keys))

    # -------------------------------------------------------------------------------------- the loop
    def plan(self, ctx: BuildContext) -> StagePlan:
        with ctx.reading_as(self):
            return self._plan(ctx)

    def _plan(self, ctx: BuildContext) -> StagePlan:
        waiting = self.waiting_for(ctx)
        if waiting:
            return StagePlan(self.name, 0, 0, waiting)
        keys = [u.key for u in self.units(ctx)]
        failed = ctx.cache.existing("failures", keys) - ctx.cache.existing(self.table, keys)
        note = self.note(ctx)
        if failed:
            retry = "will retry" if ctx.retry_failed else "not retried (failures.retry: false)"
            note = "; ".join(filter(None, [f"{len(failed)} failed last time, {retry}", note]))
        return StagePlan(self.name, len(keys), len(self.done(ctx, keys)), note, failed=len(failed))

    def run(self, ctx: BuildContext) -> StageResult:
        start, cpu = time.perf_counter(), cpu_times()
        ctx.cache.create(self.tables)  # on any cache it is given, not only the builder's
        with ctx.reading_as(self):
            result = self._settle(ctx) if self.settles else self._run(ctx)
        result.seconds, result.stolen = time.perf_counter() - start, stolen_share(cpu, cpu_times())
        return result

    def _settle(self, ctx: BuildContext) -> StageResult:
        """Passes until the listed units hold nothing new (a failed unit is retried by the next build, not
        pass after pass)."""
        total = StageResult(self.name)
        self.tried = frozenset()
        try:
            for number in range(1, 1000):
                listed = {u.key for u in self.units(ctx)}
                result = self._run(ctx, self.label or self.name if number == 1 else f"{self.name}, round {number}")
                self.tried = self.tried | listed
                total.computed += result.computed
                total.failed += result.failed
                total.unit_failures += result.unit_failures
                total.first_error = total.first_error or result.first_error
                total.units = result.units
                if result.units == result.cached:  # nothing was left to compute: settled
                    break
        finally:
            self.tried = frozenset()
        total.cached = total.units - total.computed - total.failed
        return total

    def _run(self, ctx: BuildContext, label: str | None = None) -> StageResult:
        self.prepare(ctx)
        units = self.units(ctx)
        done = self.done(ctx, [u.key for u in units])
        todo = [u for u in units if u.key not in done]
        result = StageResult(self.name, cached=len(units) - len(todo), units=len(units))
        if not todo:
            return result
        with ctx.reporter.track(label or self.label or self.name, len(todo), self.unit_name) as advance:
            attempts = ctx.recipe.failures.attempts
            for attempt in range(1, attempts + 1):
                todo, error = self._attempt(ctx, todo, result, advance, final=attempt == attempts)
                if not todo:
                    break
                wait = ctx.recipe.failures.backoff_s * 2 ** (attempt - 1)
                ctx.reporter.info(
                    f"{self.name}: {len(todo)} unit(s) failed ({escape(error)}); retrying with a fresh environment "
                    f"in {wait:.0f}s (attempt {attempt + 1} of {attempts})"
                )
                ctx.restart_environment()
                time.sleep(wait)
        return result

    def _attempt(self, ctx: BuildContext, todo: list[Unit], result: StageResult, advance, final: bool):
        """Compute ``todo`` once; returns the units that failed transiently (to try again) and their error."""
        retry: dict[str, Unit] = {}
        emitted: set[str] = set()
        recovered: list[str] = []
        transient = [""]

        def emit(unit: Unit, value: Any) -> None:
            emitted.add(unit.key)
            if isinstance(value, BaseException):
                if not final and is_transient(value):
                    retry[unit.key] = unit
                    transient[0] = transient[0] or describe(value)
                    return
                if not self.records_failures:
                    raise value
                ctx.cache.put_failure(self.name, unit.key, unit.task_id, describe(value, 2000))
                result.first_error = result.first_error or describe(value)
                result.failed += 1
                result.unit_failures += 1
            else:
                ok = self.store(ctx, unit, value)
                recovered.append(unit.key)
                result.computed += int(ok)
                if not ok:  # stored, with a failed status (e.g. an unusable reply): counts as failed
                    result.first_error = result.first_error or f"stored as failed in the {self.table} table"
                    result.failed += 1
                    result.unit_failures += 1
            ctx.unit_done()
            advance()

        try:
            self.compute(ctx, todo, Emit(emit, lambda n: advance(0, more=n)))
        except Exception as exc:  # noqa: BLE001 - a crash of the whole batch: its unfinished units failed
            if not is_transient(exc) or not self.records_failures and final:
                raise
            for unit in todo:
                if unit.key not in emitted:
                    emit(unit, exc)
        finally:
            ctx.cache.clear_failures(recovered)
        return list(retry.values()), transient[0]
