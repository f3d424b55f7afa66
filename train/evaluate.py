"""The evaluator: play held-out tasks, report average final reward and success with 95 % intervals.

Greedy decoding as in the paper; optionally k samples per task at a temperature (small greedy agents
loop, sampling breaks the loops: report both). Every episode is stored in the recipe's DuckDB cache as a
trajectory with source ``eval`` (queryable with ``steca-data sql``) under a key that names the policy's
weights, the decoding mode and the sample index, so re-running an evaluation replays nothing it has.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

from steca_data.build.builder import open_build, played_env
from steca_data.core.schemas import Trajectory
from steca_data.envs.registry import task_notes
from steca_data.episodes.runner import PromptConfig
from steca_data.policies.base import Policy, SamplingParams
from steca_data.stages.evaluation import EvalStage, Mode


@dataclass
class SplitResult:
    split: str
    mode: str
    tasks: int
    episodes: int
    avg_reward: float
    avg_reward_ci95: tuple[float, float]
    success_rate: float
    success_ci95: tuple[float, float]
    avg_steps: float
    invalid_action_rate: float
    unparsable_replies: int
    computed: int
    cached: int


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval: honest at 0 % and 100 %, unlike the normal approximation."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(values: list[float], z: float = 1.96) -> tuple[float, float]:
    """Normal interval of the mean, clipped to [0, 1]."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    m, half = statistics.fmean(values), z * statistics.stdev(values) / math.sqrt(len(values))
    return (max(0.0, m - half), min(1.0, m + half))


def summarise(split: str, mode: Mode, trajs: list[Trajectory], computed: int) -> SplitResult:
    """Intervals are taken over tasks (each task's mean over its samples), the unit that was drawn."""
    by_task: dict[str, list[Trajectory]] = {}
    for t in trajs:
        by_task.setdefault(t.task.task_id, []).append(t)
    task_reward = [statistics.fmean(t.outcome_reward for t in ts) for ts in by_task.values()]
    task_success = [statistics.fmean(float(t.success) for t in ts) for ts in by_task.values()]
    successes = sum(t.success for t in trajs)
    steps = [s for t in trajs for s in t.steps]
    invalid = sum(s.valid is False for s in steps)
    success_ci = wilson(successes, len(trajs)) if mode.samples == 1 else mean_ci(task_success)
    return SplitResult(
        split=split,
        mode=mode.name,
        tasks=len(by_task),
        episodes=len(trajs),
        avg_reward=round(statistics.fmean(task_reward), 4) if trajs else 0.0,
        avg_reward_ci95=tuple(round(x, 4) for x in mean_ci(task_reward)),
        success_rate=round(successes / len(trajs), 4) if trajs else 0.0,
        success_ci95=tuple(round(x, 4) for x in success_ci),
        avg_steps=round(len(steps) / len(trajs), 2) if trajs else 0.0,
        invalid_action_rate=round(invalid / len(steps), 4) if steps else 0.0,
        unparsable_replies=sum(t.unparsable_actions or 0 for t in trajs),
        computed=computed,
        cached=len(trajs) - computed,
    )


def task_outcomes(trajs: list[Trajectory]) -> dict[str, dict[str, float]]:
    """task id -> its success and final reward, each the mean over the task's samples (the unit a paired
    comparison resamples)."""
    by_task: dict[str, list[Trajectory]] = {}
    for t in trajs:
        by_task.setdefault(t.task.task_id, []).append(t)
    return {
        task: {
            "success": round(statistics.fmean(float(t.success) for t in ts), 4),
            "reward": round(statistics.fmean(t.outcome_reward for t in ts), 4),
        }
        for task, ts in sorted(by_task.items())
    }


def eval_modes(is_random: bool, greedy: bool, samples: int, temperature: float, base: SamplingParams) -> list[Mode]:
    if is_random:
        return [Mode("random", base, max(1, samples))]
    modes = []
    if greedy:
        modes.append(Mode("greedy", SamplingParams(**{**asdict(base), "temperature": 0.0}), 1))
    if samples:
        sampled = SamplingParams(**{**asdict(base), "temperature": temperature})
        modes.append(Mode(f"sampled T={temperature:g}", sampled, samples))
    return modes


def evaluate(
    recipe,
    policy: Policy,
    splits: list[str],
    modes: list[Mode],
    max_steps: int,
    limit: int | None,
    seed: int,
    reporter,
    outcomes: dict[tuple[str, str], dict] | None = None,
) -> list[SplitResult]:
    """Play every (split, mode, task, sample) not yet in the cache (the evaluation stage), then summarise.
    ``outcomes``, if given, receives each (split, mode name)'s per-task outcomes (``task_outcomes``)."""
    results = []
    with open_build(recipe, read_only=False, reporter=reporter) as ctx:  # outputs such as generated games
        for mode in modes:
            stage = EvalStage(policy, mode, splits, max_steps, limit, seed)
            units = stage.units(ctx)
            before = ctx.cache.existing("trajectories", [u.key for u in units])
            stage.run(ctx)
            ctx.cache.flush()
            for split, episodes in stage.episodes(ctx).items():
                computed = sum(u.item[0] == split and u.key not in before for u in units)
                results.append(summarise(split, mode, episodes, computed))
                if outcomes is not None:
                    outcomes[(split, mode.name)] = task_outcomes(episodes)
    return sorted(results, key=lambda r: (splits.index(r.split), [m.name for m in modes].index(r.mode)))


def report(recipe, model: str | None, policy: Policy, modes: list[Mode], max_steps: int, results, seconds: float):
    """The JSON report: what was evaluated, how, and the numbers per split and mode."""
    prompt, env = PromptConfig.from_recipe(recipe), played_env(recipe)
    return {
        "recipe": recipe.name,
        "recipe_fingerprint": recipe.fingerprint(),
        "model": model,
        "policy_id": policy.policy_id,
        "prompt_version": prompt.version_for(recipe.env.name, recipe.env.game),
        "prompt": asdict(prompt),
        "max_steps": max_steps,
        "modes": [{"name": m.name, "samples_per_task": m.samples, **asdict(m.params)} for m in modes],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(seconds, 1),
        "results": [asdict(r) for r in results],
        "task_notes": {r.split: notes for r in results if (notes := task_notes(env, r.split))},
    }
