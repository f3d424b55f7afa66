"""The ``virtualhome`` environment backend: the EnvBackend/EnvSession protocol over ``simulator.Episode``.

Sessions share the process-wide cache of built task graphs (read-only) and own their episode state, so
they run on separate threads like the other backends' sessions. Everything is deterministic: the same
actions from a reset give the same observations, in any process.
"""

from __future__ import annotations

from typing import Any

from steca_data.core.schemas import Task
from steca_data.envs.base import EnvError, StepResult
from steca_data.envs.virtualhome.data import load_programs, virtualhome_version
from steca_data.envs.virtualhome.splits import STECA_FOLDS, fold_tasks
from steca_data.envs.virtualhome.steca_tests import Availability, StecaRow, availability, dataset_root, load_rows

ENV_NAME = "virtualhome"
TASK_PREFIX = "vh/"
_RULES = ("goal", "steca")


def steca_availability(spec, split_name: str) -> Availability:
    split = spec.splits[split_name]
    return availability(split.fold, split.start, split.count, spec.steca_dir, spec.dataset_dir, spec.success)


def task_notes(spec, split_name: str) -> dict[str, Any] | None:
    """For a STeCa test split: its source, how many rows run here and why the others do not, the success rule."""
    if spec.splits[split_name].fold not in STECA_FOLDS:
        return None
    found = steca_availability(spec, split_name)
    return {"summary": f"{found.summary()}; success rule '{spec.success}'", "success_rule": spec.success,
            **found.as_dict()}  # fmt: skip


def list_tasks(spec, split_name: str) -> list[Task]:
    """Block ``[start, start + count)`` of the split's fold (see ``splits`` for how folds are drawn); for STeCa's
    test folds, the rows of the block whose initial graph the dataset directory holds (``task_notes`` says how
    many and why the rest are not runnable)."""
    split = spec.splits[split_name]
    if split.fold in STECA_FOLDS:
        return [
            Task(
                task_id=f"{TASK_PREFIX}{split.fold}/{row.key}/{spec.success}",
                env=ENV_NAME,
                game=row.program.title,
                params="",
                seed=None,
                fold=split.fold,
                split=split_name,
                unseen=split.fold == "steca_unseen",
            )
            for row in steca_availability(spec, split_name).runnable
        ]
    items = fold_tasks(split.fold)
    if split.start + split.count > len(items):
        raise ValueError(
            f"env.splits.{split_name}: asks for tasks {split.start}..{split.start + split.count - 1} of fold "
            f"{split.fold!r}, which holds {len(items)} VirtualHome tasks"
        )
    return [
        Task(
            task_id=TASK_PREFIX + file_id,
            env=ENV_NAME,
            game=title,
            params="",
            seed=None,
            fold=split.fold,
            split=split_name,
            unseen=split.fold == "unseen",
        )
        for file_id, title in items[split.start : split.start + split.count]
    ]


def steca_row_of(task: Task, spec) -> tuple[StecaRow, str] | None:
    """The STeCa test row and success rule a task id names (``vh/steca_seen/017-3/steca``); None for scene-1 ids."""
    parts = task.task_id[len(TASK_PREFIX) :].split("/") if task.task_id.startswith(TASK_PREFIX) else []
    if len(parts) != 3 or parts[0] not in STECA_FOLDS:
        return None
    if spec is None:
        raise EnvError(f"{task.task_id}: a STeCa test task needs a backend made from a recipe")
    fold, key, rule = parts
    rows = load_rows(fold, spec.steca_dir)
    index = int(key.split("-", 1)[0]) if key.split("-", 1)[0].isdigit() else -1
    if not 0 <= index < len(rows) or rows[index].key != key or rule not in _RULES:
        raise EnvError(f"{task.task_id}: no such row in STeCa's {fold} file")
    return rows[index], rule


def _world_of(task: Task, backend: VirtualHomeBackend | None):
    from steca_data.envs.virtualhome.simulator import load_steca_world, load_world

    spec = backend.spec if backend is not None else None
    found = steca_row_of(task, spec)
    if found is None:
        return load_world(file_id_of(task))
    row, rule = found
    return load_steca_world(row, dataset_root(spec.dataset_dir), rule)


def file_id_of(task: Task) -> str:
    if not task.task_id.startswith(TASK_PREFIX):
        raise EnvError(f"not a VirtualHome task id: {task.task_id!r}")
    file_id = task.task_id[len(TASK_PREFIX) :]
    if file_id not in load_programs():
        raise EnvError(f"no VirtualHome program file{file_id}.txt in {virtualhome_version()}")
    return file_id


def instruction_text(title: str, description: str) -> str:
    """STeCa's prompt: ``The task is {title}({description}).``"""
    return f"The task is {title}({description.strip().rstrip('.')})."


class VirtualHomeSession:
    """One episode at a time; a reset makes a fresh simulator state, so it restores the start exactly."""

    def __init__(self, backend: VirtualHomeBackend | None = None, with_admissible: bool = True):
        """``with_admissible=False`` leaves ``StepResult.admissible`` empty: replays that need no action list
        (a prefix before a rollout, a check) skip its ~6 ms per step."""
        self._backend = backend
        self._episode = None
        self._with_admissible = with_admissible

    def _result(self, observation: str, valid: bool | None = None) -> StepResult:
        episode = self._episode
        met, total = episode.goal_progress()
        success = total > 0 and met == total
        partial = met / total if total and episode.world.steca_goal is None else 0.0  # STeCa's rule: 0 or 1
        return StepResult(
            observation=observation,
            score=1.0 if success else partial,
            done=success,
            success=success,
            admissible=episode.admissible() if self._with_admissible else [],
            valid=valid,
        )

    def reset(self, task: Task) -> StepResult:
        from steca_data.envs.virtualhome.simulator import Episode

        world = _world_of(task, self._backend)
        if self._episode is not None and self._episode.world is world:
            self._episode.reset()
        else:
            self._episode = Episode(world)
        return self._result(self._episode.observation())

    def step(self, action: str) -> StepResult:
        """``valid`` is whether the executor accepted the action (every admissible action is accepted)."""
        from steca_data.envs.virtualhome.simulator import NOTHING_HAPPENS

        if self._episode is None:
            raise EnvError("step() before reset()")
        ok = self._episode.act(action)
        return self._result(self._episode.observation() if ok else NOTHING_HAPPENS, valid=ok)

    def instruction(self) -> str:
        if self._episode is None:
            raise EnvError("instruction() before reset()")
        program = self._episode.world.program
        return instruction_text(program.title, program.description)

    def gold_actions(self, task: Task) -> list[str]:
        """The gold program as text actions, without the lines the executor refuses (they change nothing; 23
        of the 3,903 lines of kept tasks) and ending where the goal is reached (the build stops there too)."""
        from steca_data.envs.virtualhome.simulator import Episode, gold_text_actions

        episode = Episode(_world_of(task, self._backend))
        kept = []
        for action in episode.world.gold or gold_text_actions(episode.world.program):
            if episode.act(action):
                kept.append(action)
                if episode.success():
                    break
        return kept

    def close(self) -> None:
        self._episode = None


class VirtualHomeBackend:
    """Gold actions: the dataset's program, line by line, as text actions."""

    name = ENV_NAME

    def __init__(self, spec):
        self.spec = spec
        self.version = virtualhome_version()

    def tasks(self, split_name: str) -> list[Task]:
        return list_tasks(self.spec, split_name)

    def new_session(self, with_admissible: bool = True) -> VirtualHomeSession:
        return VirtualHomeSession(self, with_admissible)

    def gold_actions(self, session: VirtualHomeSession, task: Task) -> list[str]:
        """The gold program as text actions; leaves ``session`` reset at the start of ``task``."""
        actions = session.gold_actions(task)
        session.reset(task)
        return actions

    def close(self) -> None:
        pass
