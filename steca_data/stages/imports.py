"""The import stage: expert trajectories from a ShareGPT / ETO / OpenAI-messages file.

A record whose ``game_file`` or ``id`` names a task of the recipe's environment (``EnvPlugin.task_for_record``)
is *replayed* there: its actions are played in order (in the environment's wording, ``replay_action``), the
observations are the environment's, the thoughts are the file's. A record whose action the environment
rejects, or whose replay does not end in success, is skipped. Replayed experts are ordinary expert
trajectories of environment tasks, so the engine (proposals, rollouts, reflections, Dc/De/Ds) walks them as it
walks gold paths: the stage publishes the train tasks they name (``ImportedTasks``) for the engine to walk
instead of the recipe's train split. The task's split follows the game's fold (train, or the recipe split
drawn from its held-out fold); the engine walks the train ones.

A record that names no task is imported as the file tells it (its own steps and observations) when the recipe
asks only for the ``expert`` dataset; with dc/de/ds it is skipped, since the engine must replay what it walks.

Every skipped record is in ``import_errors`` with its index and the reason; one bad record never stops the
others. A problem with the whole file (not JSON, not a list of records, undecodable) is a recipe error
raised before any work (``check_import_source``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rich.markup import escape

from steca_data.cache.store import Table
from steca_data.core.errors import RecipeError
from steca_data.core.keys import unit_key
from steca_data.core.schemas import Task, Trajectory
from steca_data.envs import EnvError
from steca_data.envs.base import as_step
from steca_data.envs.registry import plugin
from steca_data.importers.files import ImportFileError, safe_text
from steca_data.importers.sharegpt import Imported, ImportFile, import_file
from steca_data.recipe.model import Recipe
from steca_data.stages.base import BuildContext, Emit, Stage, StageResult, Unit
from steca_data.stages.experts import ExpertTrajectories, won_replay

IMPORT_ERRORS = Table(
    "import_errors",
    """CREATE TABLE IF NOT EXISTS import_errors (
            source VARCHAR, record_index INTEGER, record_id VARCHAR, error VARCHAR,
            PRIMARY KEY (source, record_index))""",
    "Malformed records of imported expert files, by index; they are skipped, never dropped silently.",
)


IMPORT_VERSION = "1"
REPLAY_VERSION = "1"


class ReplayRejected(EnvError):
    """The environment rejects an action of the record, or the replay does not end in success."""


@dataclass(frozen=True)
class Rejected:
    """A replay's deterministic outcome: the record cannot be an expert here (not a failure to retry)."""

    error: str


def rejected_key(key: str) -> str:
    """Where a rejected replay is remembered in the ``failures`` table (the unit itself is never stored)."""
    return f"{key}:rejected"


@dataclass(frozen=True)
class ImportedTasks:
    """The train tasks the imported records name, in file order: what the engine walks."""

    train: tuple[Task, ...]


@dataclass(frozen=True)
class ImportPlan:
    """The file read and each readable record sorted: replayed on a task, imported as it is, or skipped."""

    source: str
    digest: str
    replays: list[tuple[Imported, Task]]
    as_is: list[Imported]
    errors: list[tuple[int, str | None, str]]


@lru_cache(maxsize=4)
def _read(path: Path, env: str, mtime_ns: int, size: int) -> ImportFile:
    return import_file(path, env, "imported")


def _read_source(recipe: Recipe) -> tuple[Path, ImportFile]:
    path = recipe.resolve(recipe.experts.path)
    where = f"{recipe.source_path or 'recipe'}: experts.path"
    try:
        stat = path.stat()
        return path, _read(path, recipe.env.name, stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise RecipeError([f"{where}: file not found: {safe_text(str(path))}"]) from None
    except (ImportFileError, OSError) as exc:
        raise RecipeError([f"{where}: {safe_text(str(path))}: {safe_text(str(exc))}"]) from None


def check_import_source(recipe: Recipe) -> None:
    """Raise ``RecipeError`` (one line) when the recipe's import file cannot be imported at all."""
    _read_source(recipe)


def _ref_id(item: Imported) -> str | None:
    value = item.ref.get("id") or item.ref.get("game_file")
    return safe_text(value, 200) if value else None


def _sort(ctx: BuildContext) -> ImportPlan:
    """Map every readable record to a task of the environment, or decide it cannot be used."""
    recipe = ctx.recipe
    path, parsed = _read_source(recipe)
    env_plugin = plugin(recipe.env.name)
    replays: list[tuple[Imported, Task]] = []
    as_is: list[Imported] = []
    errors = list(parsed.bad)
    seen: dict[tuple, int] = {}
    for item in parsed.good:
        try:
            task = env_plugin.task_for_record(ctx.env, item.ref) if item.ref else None
        except Exception as exc:  # noqa: BLE001 - a record naming a missing game is one skipped record
            errors.append((item.index, _ref_id(item), safe_text(str(exc))))
            continue
        if task is None:
            if recipe.uses_engine:
                errors.append((item.index, _ref_id(item), f"names no task of {recipe.env.name} (by game_file or "
                               "id); dc/de/ds need experts replayed in the environment"))  # fmt: skip
            else:
                as_is.append(item)
            continue
        # the engine walks one expert per task; the expert dataset takes a task twice, with other steps
        same = (task.task_id,) if recipe.uses_engine else (task.task_id, *_steps_of(item.trajectory))
        if same in seen:
            errors.append((item.index, _ref_id(item), f"names the same game as record {seen[same]} ({task.task_id})"))
            continue
        seen[same] = item.index
        replays.append((item, task))
    return ImportPlan(str(path), parsed.digest, replays, as_is, sorted(errors))


def _steps_of(trajectory: Trajectory) -> tuple[tuple[str, str], ...]:
    return tuple((s.thought, s.action) for s in trajectory.steps)


def replay_key(ctx: BuildContext, item: Imported, task: Task) -> str:
    """A replay is a pure function of the task, the file's thoughts and actions, and the environment."""
    steps = _steps_of(item.trajectory)
    return unit_key("replay", REPLAY_VERSION, task=task.task_id, steps=steps, env_version=ctx.env_version)


def replay_record(session, task: Task, record: Trajectory, env_version: str, wording, key: str) -> Trajectory:
    """Play the record's actions on ``task``: the environment's observations, the file's thoughts."""
    first = session.reset(task)
    instruction = session.instruction()
    result, steps = first, []
    for j, step in enumerate(record.steps, 1):
        action = wording(step.action, result.admissible)
        result = session.step(action)
        if result.valid is False:
            raise ReplayRejected(f"step {j}: the environment rejects the action {safe_text(step.action, 120)!r}")
        steps.append(as_step(action, result, step.thought))
        if result.done:
            break
    if not result.success:
        ended = "ended" if len(steps) == len(record.steps) else f"stopped at step {len(steps)} of {len(record.steps)}"
        raise ReplayRejected(f"the replay {ended} without success (score {result.score:.2f})")
    trajectory_id = f"imported:{task.task_id}:{key[:8]}"
    instruction = instruction or record.instruction
    return won_replay(
        trajectory_id, "imported", task, instruction, first, steps, result, env_version, thought_source="file"
    )


class ImportStage(Stage):
    name = "import"
    table = "trajectories"
    label, unit_name = "import", "records"
    gives = (ExpertTrajectories, ImportedTasks)
    tables = (IMPORT_ERRORS,)
    _rejected = 0  # replays rejected in this run (counted as skipped records, not as computed units)

    def _plan(self, ctx: BuildContext) -> ImportPlan:
        return ctx.derive(ImportPlan, _sort)

    def units(self, ctx: BuildContext) -> list[Unit]:
        plan = self._plan(ctx)
        replays = [Unit(replay_key(ctx, item, task), task.task_id, (item, task)) for item, task in plan.replays]
        as_is = [
            Unit(unit_key("import", IMPORT_VERSION, file=plan.digest, index=item.index), item.trajectory.task.task_id,
                 (item, None))
            for item in plan.as_is
        ]  # fmt: skip
        return sorted(replays + as_is, key=lambda u: u.item[0].index)

    def _errors(self, ctx: BuildContext) -> list[tuple[int, str | None, str]]:
        """The plan's errors, the rejected replays and the replays that failed, by record index."""
        plan = self._plan(ctx)
        items = {}
        for item, task in plan.replays:
            key = replay_key(ctx, item, task)
            items[key] = items[rejected_key(key)] = item
        rows = ctx.cache.sql("SELECT key, error FROM failures WHERE key IN (SELECT unnest(?))", [list(items)])
        failed = {items[k].index: (items[k].index, _ref_id(items[k]), error) for k, error in rows.fetchall()}
        return sorted(plan.errors + list(failed.values()))

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        """Stored, or rejected by the environment (final: the same record is rejected the same way)."""
        rejected = ctx.cache.existing("failures", [rejected_key(k) for k in keys])
        return super().done(ctx, keys) | {k for k in keys if rejected_key(k) in rejected}

    def note(self, ctx: BuildContext) -> str:
        plan = self._plan(ctx)
        parts = [f"{len(plan.replays)} replayed in the environment"] if plan.replays else []
        parts += [f"{len(plan.errors)} record(s) will be skipped (see import_errors)"] if plan.errors else []
        return "; ".join(parts)

    def prepare(self, ctx: BuildContext) -> None:
        plan = self._plan(ctx)
        ctx.cache.put_import_errors(plan.source, self._errors(ctx))
        name = escape(Path(plan.source).name)
        for index, rid, error in plan.errors:
            where = f"record {index}" + (f" ({escape(rid)})" if rid else "") + f" of {name}"
            ctx.reporter.info(f"[yellow]skipped {where}: {escape(error)}")
        tasks = {t.task_id: t for _, t in plan.replays} | {
            i.trajectory.task.task_id: i.trajectory.task for i in plan.as_is
        }
        ctx.cache.put_tasks(list(tasks.values()))

    def run(self, ctx: BuildContext) -> StageResult:
        self._rejected = 0
        result = super().run(ctx)
        plan = self._plan(ctx)
        errors = self._errors(ctx)
        ctx.cache.put_import_errors(plan.source, errors)
        # skipped records are the file's problems, reported in import_errors: not units that failed
        result.computed -= self._rejected
        result.failed += len(plan.errors) + self._rejected
        if errors:
            result.notes.append(f"{len(errors)} record(s) skipped: see import_errors")
            index, _, error = errors[0]
            result.first_error = result.first_error or f"see import_errors (first: record {index}: {error})"
            ctx.reporter.info(f"[yellow]import: {len(errors)} record(s) skipped: see import_errors")
        return result

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        replays = [u for u in todo if u.item[1] is not None]
        for unit in todo:
            if unit.item[1] is None:
                emit(unit, unit.item[0].trajectory)
        if not replays:
            return
        version = ctx.env_version
        wording = plugin(ctx.recipe.env.name).replay_action

        def play(_backend, session, unit: Unit) -> Trajectory:
            item, task = unit.item
            return replay_record(session, task, item.trajectory, version, wording, unit.key)

        def on_result(unit: Unit, outcome) -> None:
            if isinstance(outcome, ReplayRejected):
                item = unit.item[0]
                where = f"record {item.index}" + (f" ({escape(_ref_id(item))})" if _ref_id(item) else "")
                ctx.reporter.info(f"[yellow]skipped {where}: {escape(str(outcome))}")
                outcome = Rejected(str(outcome))
            emit(unit, outcome)

        ctx.executor.map_sessions(play, replays, on_result)

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory | Rejected) -> bool:
        if isinstance(result, Rejected):
            ctx.cache.put_failure(self.name, rejected_key(unit.key), unit.task_id, result.error)
            self._rejected += 1
        else:
            ctx.cache.put_trajectory(unit.key, result)
        return True

    def output(self, ctx: BuildContext) -> tuple[ExpertTrajectories, ImportedTasks]:
        # what the engine walks: the train tasks the records name (published beside the trajectories)
        walked = ImportedTasks(tuple(task for _, task in self._plan(ctx).replays if task.split == "train"))
        return ExpertTrajectories.present(ctx, self.units(ctx)), walked


class BuiltExperts(Stage):
    """The experts of a finished build, read from its cache alone: what an iterated method's later rounds walk.

    A round explores the same expert trajectories as the base build did, with a new policy. Those are rows of
    the cache already (``build.json`` names their keys and the walked tasks), so a round never re-reads the
    recipe's input files (an imported ShareGPT file): a build directory copied elsewhere without them still
    trains IPR and ETO. Nothing is computed here; a key missing from the cache is an error, not work."""

    name = "experts"
    table = "trajectories"
    label, unit_name = "experts (from the build)", "trajectories"
    records_failures = False
    gives = (ExpertTrajectories, ImportedTasks)

    def __init__(self, keys: tuple[str, ...], walk_tasks: tuple[Task, ...]):
        self.keys, self.walk_tasks = keys, walk_tasks

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [Unit(key, "") for key in self.keys]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        for unit in todo:
            emit(unit, KeyError(f"expert trajectory {unit.key[:12]} is not in the build's cache (build it again)"))

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        raise AssertionError("BuiltExperts computes nothing")

    def output(self, ctx: BuildContext) -> tuple[ExpertTrajectories, ImportedTasks]:
        return ExpertTrajectories(self.keys), ImportedTasks(self.walk_tasks)
