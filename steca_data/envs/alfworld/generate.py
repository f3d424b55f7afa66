"""Generate a verified ALFWorld game set: train / valid_seen / valid_unseen, all six task types.

Each game is a pure function of (seed, fold, index, attempt): the task type cycles through the requested
types, the floor plan and everything in the room come from a generator seeded by that tuple, so the same
seed gives byte-identical games whatever the number of workers. A game is kept only when the planner's
walkthrough, replayed in the real engine, wins it; the fixed hand-coded expert is then run on it and its
result is recorded (not required: the walkthrough is the proof of solvability).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from steca_data.envs.alfworld.gamefiles import FOLDS, write_game
from steca_data.envs.alfworld.problem import TASK_TYPES, NoTask, sample_game
from steca_data.envs.alfworld.scenes import floor_plans_for, load_floor_plan

GENERATOR_VERSION = "1"
MAX_ATTEMPTS = 40
WALKTHROUGH_CAP = 100  # ALFRED discards plans longer than this (PLANNER_MAX_STEPS)


@dataclass
class GameResult:
    fold: str
    index: int
    path: str = ""
    task_type: str = ""
    floor_plan: int = 0
    walkthrough_steps: int = 0
    expert_won: bool = False
    expert_steps: int = 0
    expert_error: str = ""
    rejected: list[str] = field(default_factory=list)  # why earlier attempts were discarded


def _game_files(spec, seed: int, fold: str, index: int) -> tuple[dict, dict]:
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    grammar = Path(ALFRED_TWL2_PATH).read_text().replace("UNKNOWN GOAL", spec.goal)
    game = {"pddl_domain": Path(ALFRED_PDDL_PATH).read_text(), "grammar": grammar, "pddl_problem": spec.problem}
    traj = {
        "task_type": spec.task_type,
        "task_id": f"steca_{seed}_{fold}_{index:05d}",
        "pddl_params": {
            "object_target": spec.object_target,
            "parent_target": spec.parent_target,
            "toggle_target": spec.toggle_target,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "scene": {"floor_plan": spec.floor_plan.name, "scene_num": spec.floor_plan.number, "random_seed": seed},
        "turk_annotations": {"anns": [{"task_desc": spec.goal}]},
        "steca": {"generator_version": GENERATOR_VERSION, "seed": seed, "fold": fold, "index": index},
    }
    return game, traj


def _verify(folder: Path, traj: dict) -> tuple[list[str], object]:
    """Planner walkthrough replayed in a fresh engine; returns (walkthrough, expert run)."""
    from steca_data.envs.alfworld.engine import make_env
    from steca_data.envs.alfworld.expert import run_expert

    gamefile = str(folder / "game.tw-pddl")
    planner = make_env(facts=False, walkthrough=True)
    planner.load(gamefile)
    walkthrough = list(planner.reset()["extra.walkthrough"])
    if not walkthrough:
        raise NoTask("planner found no plan")
    if len(walkthrough) > WALKTHROUGH_CAP:
        raise NoTask(f"walkthrough of {len(walkthrough)} steps exceeds {WALKTHROUGH_CAP}")
    env = make_env(facts=True)
    env.load(gamefile)
    state = env.reset()
    for action in walkthrough:
        if action not in state["admissible_commands"]:
            raise NoTask(f"walkthrough action not admissible: {action!r}")
        state, _, _ = env.step(action)
    if not state["won"]:
        raise NoTask("walkthrough replay did not win")
    return walkthrough, run_expert(env, traj, seed=0)


def generate_one(out: str, seed: int, fold: str, index: int, size: str, task_types: tuple[str, ...]) -> GameResult:
    """Generate and verify game ``index`` of ``fold``; retried with new draws until one passes."""
    result = GameResult(fold, index)
    task_type = task_types[index % len(task_types)]
    out_dir = Path(out)
    for attempt in range(MAX_ATTEMPTS):
        rng = random.Random(f"{seed}:{fold}:{index}:{attempt}")
        number = rng.choice(floor_plans_for(fold))
        folder = None
        try:
            spec = sample_game(load_floor_plan(number), task_type, size, rng)
            game, traj = _game_files(spec, seed, fold, index)
            folder = out_dir / fold / spec.folder / f"trial_S{seed}_{index:05d}"
            write_game(folder, {**game, "solvable": False}, traj)
            walkthrough, expert = _verify(folder, traj)
        except NoTask as exc:
            if folder is not None:
                result.rejected.append(f"FloorPlan{number}: {exc}")
                _remove(folder)
            continue
        except Exception as exc:  # an engine failure on one draw must not stop the set
            result.rejected.append(f"FloorPlan{number}: {type(exc).__name__}: {exc}")
            if folder is not None:
                _remove(folder)
            continue
        write_game(folder, {**game, "walkthrough": walkthrough, "solvable": True}, traj)
        result.path = folder.relative_to(out_dir).as_posix()
        result.task_type, result.floor_plan = task_type, number
        result.walkthrough_steps = len(walkthrough)
        result.expert_won, result.expert_steps, result.expert_error = expert.won, len(expert.actions), expert.error
        return result
    return result


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    if not any(folder.parent.iterdir()):
        folder.parent.rmdir()


@dataclass
class GenerationReport:
    out: str
    seed: int
    size: str
    results: list[GameResult]
    seconds: float = 0.0

    def kept(self) -> list[GameResult]:
        return [r for r in self.results if r.path]

    def failed(self) -> list[GameResult]:
        return [r for r in self.results if not r.path]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter] = {fold: Counter() for fold in FOLDS}
        for r in self.kept():
            table[r.fold][r.task_type] += 1
        return {fold: dict(sorted(c.items())) for fold, c in table.items()}

    def expert_win_rate(self) -> float:
        kept = self.kept()
        return sum(r.expert_won for r in kept) / max(1, len(kept))

    def to_json(self) -> dict:
        return {
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "size": self.size,
            "seconds": round(self.seconds, 1),
            "counts": self.counts(),
            "expert_win_rate": round(self.expert_win_rate(), 4),
            "games": [asdict(r) for r in self.results],
        }


def plan_jobs(games: dict[str, int]) -> list[tuple[str, int]]:
    return [(fold, i) for fold in FOLDS for i in range(games.get(fold, 0))]


def generate(
    out: Path,
    seed: int,
    games: dict[str, int],
    size: str = "small",
    task_types: tuple[str, ...] = TASK_TYPES,
    workers: int = 1,
    advance=lambda n=1: None,
    mp_context=None,
) -> GenerationReport:
    """Write ``games[fold]`` verified games per fold under ``out`` and a ``manifest.json`` describing them.

    ``mp_context``: how worker processes start (default: the platform's; a build passes ``spawn``, since it
    runs threads that a fork would copy mid-operation)."""
    import time

    start = time.monotonic()
    jobs = plan_jobs(games)
    args = [(str(out), seed, fold, i, size, tuple(task_types)) for fold, i in jobs]
    results: list[GameResult] = []
    if workers <= 1:
        for a in args:
            results.append(generate_one(*a))
            advance()
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp_context) as pool:
            for r in pool.map(_generate_star, args, chunksize=2):
                results.append(r)
                advance()
    report = GenerationReport(str(out), seed, size, results, time.monotonic() - start)
    (out / "manifest.json").write_text(json.dumps(report.to_json(), indent=1))
    return report


def _generate_star(args: tuple) -> GameResult:
    return generate_one(*args)


def write_generated(out: Path, settings: dict, workers: int = 1) -> dict:
    """The build's ``games`` stage: the set ``settings`` describes (seed, per-fold counts, size, task types),
    exactly as ``steca-data alfworld generate`` writes it; fails unless every game was made."""
    import multiprocessing

    out.mkdir(parents=True, exist_ok=True)
    spawn = multiprocessing.get_context("spawn") if workers > 1 else None
    report = generate(
        out,
        settings["seed"],
        settings["games"],
        size=settings["size"],
        task_types=tuple(settings["task_types"]),
        workers=workers,
        mp_context=spawn,
    )
    failed = report.failed()
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed)} game(s) could not be generated (e.g. {first.fold} #{first.index}: "
            f"{first.rejected[-1] if first.rejected else 'no draw'}); try another env.generate.seed"
        )
    return {
        "games": report.counts(),
        "kept": len(report.kept()),
        "expert_win_rate": round(report.expert_win_rate(), 4),
        "seconds": round(report.seconds, 1),
    }
