"""The ``alfworld`` environment backend: generated or official games through the cached real engine.

A session owns one engine (its own copy of the Fast Downward library, so sessions run on separate
threads) and reloads a game only when the task changes; translations and command texts are shared
process-wide, so resetting to replay a prefix costs a fraction of the stock engine's reset.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from steca_data.core.schemas import Task
from steca_data.envs.alfworld.gamefiles import (
    FOLDS,
    GAME_FILE,
    data_root,
    find_games,
    game_dir,
    parse_game_ref,
    read_traj_data,
)
from steca_data.envs.alfworld.problem import TASK_TYPES
from steca_data.envs.base import EnvError, StepResult

_INTRO = "-= Welcome to TextWorld, ALFRED! =-"


def alfworld_version() -> str:
    from alfworld.info import __version__ as alfworld
    from textworld import __version__ as textworld

    return f"alfworld {alfworld}; textworld {textworld}"


def resolve_data_dir(spec) -> Path:
    """``env.data_dir`` (already absolute once the recipe is loaded), else $ALFWORLD_DATA, else the tree the
    build generated."""
    root = spec.game_root()
    if root is None:
        raise ValueError(
            "env.data_dir: not set, ALFWORLD_DATA is not set and the build has not generated its games yet "
            "(`steca-data build RECIPE` runs the games stage first)"
        )
    return data_root(root)


def task_types_of(game: str) -> set[str] | None:
    """``env.game`` for ALFWorld: 'all' or a comma-separated list of task types."""
    if game in ("all", ""):
        return None
    types = {t.strip() for t in game.split(",") if t.strip()}
    unknown = types - set(TASK_TYPES)
    if unknown:
        raise ValueError(f"game: unknown ALFWorld task type(s) {sorted(unknown)} (known: all, {', '.join(TASK_TYPES)})")
    return types


def list_alfworld_tasks(spec, split_name: str) -> list[Task]:
    """The tasks of a recipe split; none while the build's own games are not generated yet (``plan``)."""
    split = spec.splits[split_name]
    if spec.game_root() is None:
        return []
    root = resolve_data_dir(spec)
    games = find_games(root, split.fold, task_types_of(spec.game))
    wanted = games[split.start : split.start + split.count]
    if len(wanted) < split.count:
        raise ValueError(
            f"env.splits.{split_name}: asks for games {split.start}..{split.start + split.count - 1} of fold "
            f"{split.fold!r} but {root / split.fold} holds {len(games)} matching game(s); "
            "generate more with `steca-data alfworld generate`"
        )
    return [
        Task(
            task_id=g.task_id,
            env="alfworld",
            game=g.task_type,
            params="",
            seed=None,
            fold=g.fold,
            split=split_name,
            unseen=g.fold == "valid_unseen",
        )
        for g in wanted
    ]


def _split_of(spec, fold: str) -> str:
    """The recipe split a game of ``fold`` belongs to: train for the train fold, else the split drawn from it."""
    if fold == "train":
        return "train"
    return next((name for name, split in spec.splits.items() if split.fold == fold), fold)


def task_for_record(spec, record: dict) -> Task | None:
    """The game an imported record names by ``game_file`` (or ``id``), as a task of this recipe's tree."""
    ref = record.get("game_file") or record.get("id")
    parsed = parse_game_ref(ref) if ref else None
    if parsed is None or spec.game_root() is None:
        return None
    root = resolve_data_dir(spec)
    fold, relpath = parsed
    folds = FOLDS if fold is None else (fold,)
    if fold is not None and fold not in FOLDS:
        raise ValueError(f"game {fold}/{relpath}: fold {fold!r} is not played here (folds: {', '.join(FOLDS)})")
    folder = next((root / f / relpath for f in folds if (root / f / relpath / GAME_FILE).is_file()), None)
    if folder is None:
        where = relpath if fold is None else f"{fold}/{relpath}"
        raise ValueError(f"no game {where} in the game tree {root}")
    if "movable" in relpath or "Sliced" in relpath:
        raise ValueError(f"game {relpath}: ALFWorld's text engine plays no movable-receptacle or sliced-object game")
    fold = folder.relative_to(root).parts[0]
    task_type = str(read_traj_data(folder).get("task_type") or relpath.split("-", 1)[0])
    types = task_types_of(spec.game)
    if types and task_type not in types:
        raise ValueError(f"game {relpath}: task type {task_type} is not in env.game ({spec.game})")
    return Task(
        task_id=f"alfworld/{fold}/{relpath}",
        env="alfworld",
        game=task_type,
        params="",
        seed=None,
        fold=fold,
        split=_split_of(spec, fold),
        unseen=fold == "valid_unseen",
    )


_PUT = re.compile(r"put (.+?) (?:in/on|into|in|on) (.+)")


def replay_action(action: str, admissible: list[str]) -> str:
    """ALFWorld 0.3's ``put X in/on Y`` (the wording of the ETO / IPR / STeCa files) as 0.4's ``move X to Y``."""
    if action in admissible:
        return action
    match = _PUT.fullmatch(action.strip())
    if match:
        moved = f"move {match.group(1)} to {match.group(2)}"
        if moved in admissible:
            return moved
    return action


def _instruction(intro: str) -> str:
    marker = "Your task is to: "
    return intro.split(marker, 1)[1].strip() if marker in intro else ""


class AlfworldSession:
    """One engine playing one episode at a time (the engine, and the game it has loaded, come from the
    backend's idle ones when there are any)."""

    def __init__(self, backend: AlfworldBackend, engine, loaded: str | None):
        self._backend = backend
        self._env = engine
        self._loaded = loaded
        self._state = None
        self._intro = ""

    def _load(self, task: Task) -> Path:
        folder = game_dir(self._backend.root, task.task_id)
        if self._loaded != task.task_id:
            if not (folder / GAME_FILE).is_file():
                raise EnvError(f"no game file for {task.task_id} under {self._backend.root}")
            self._env.load(str(folder / GAME_FILE))
            self._loaded = task.task_id
        return folder

    def _result(self, observation: str, valid: bool | None = None) -> StepResult:
        won = bool(self._state["won"])
        return StepResult(
            observation=observation.strip(),
            score=1.0 if won else 0.0,
            done=won,
            success=won,
            admissible=list(self._state["admissible_commands"]),
            valid=valid,
        )

    def reset(self, task: Task) -> StepResult:
        self._load(task)
        self._state = self._env.reset()
        self._intro = self._state.feedback
        observation = self._intro.replace(_INTRO, "").split("Your task is to:")[0]
        return self._result(observation)

    def step(self, action: str) -> StepResult:
        if self._state is None:
            raise EnvError("step() before reset()")
        valid = action.strip() in self._state["admissible_commands"]
        self._state, _, _ = self._env.step(action)
        return self._result(self._state.feedback, valid)

    def instruction(self) -> str:
        return _instruction(self._intro)

    def remaining_plan(self) -> list[str] | None:
        """The planner's plan from the current state ([] at the goal, None: no plan); see ``envs.base``."""
        if self._state is None:
            raise EnvError("remaining_plan() before reset()")
        return self._env.remaining_plan()

    def expert(self, task: Task, seed: int = 0):
        """Run the fixed hand-coded expert on ``task`` (leaves the engine mid-episode)."""
        from steca_data.envs.alfworld.expert import run_expert

        folder = self._load(task)
        return run_expert(self._env, read_traj_data(folder), seed=seed)

    def walkthrough(self, task: Task) -> list[str]:
        folder = self._load(task)
        import json

        return list(json.loads((folder / GAME_FILE).read_text()).get("walkthrough") or [])

    def close(self) -> None:
        if self._env is not None:
            self._backend.give_back(self._env, self._loaded)
        self._env = None


class AlfworldBackend:
    """Gold actions: the fixed hand-coded expert's (as in the ALFWorld/ETO expert data), falling back
    to the game's verified planner walkthrough when the expert fails; ``params.planner_gold: true``
    uses the walkthrough always."""

    name = "alfworld"

    def __init__(self, spec):
        self.spec = spec
        self.version = alfworld_version()
        self.root = resolve_data_dir(spec)
        self.planner_gold = bool(spec.params.get("planner_gold", False))
        self._lock = threading.Lock()
        # Engines of closed sessions, with the game each has loaded: an engine is a private copy of Fast
        # Downward's 33 MB library, loaded for good (ctypes never unloads it), so every run of episodes
        # making its own cost a file copy and a dlopen per session and grew the process each time.
        self._idle: list[tuple[object, str | None]] = []
        self._closed = False

    def tasks(self, split_name: str) -> list[Task]:
        return list_alfworld_tasks(self.spec, split_name)

    def new_session(self) -> AlfworldSession:
        from steca_data.envs.alfworld.engine import make_env

        with self._lock:
            if self._idle:
                return AlfworldSession(self, *self._idle.pop())
            return AlfworldSession(self, make_env(facts=True), None)

    def give_back(self, engine, loaded: str | None) -> None:
        """A closed session's engine, for the next session; dropped once the backend is closed."""
        with self._lock:
            if not self._closed:
                self._idle.append((engine, loaded))

    def gold_actions(self, session: AlfworldSession, task: Task) -> list[str]:
        actions: list[str] = []
        if not self.planner_gold:
            run = session.expert(task)
            if run.won:
                actions = run.actions
        if not actions:
            actions = session.walkthrough(task)
        if not actions:
            raise EnvError(f"{task.task_id}: the expert failed and the game has no walkthrough")
        session.reset(task)
        return actions

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._idle.clear()
