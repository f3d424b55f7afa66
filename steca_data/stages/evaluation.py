"""The evaluation stage: play held-out tasks with a policy and store every episode as a trajectory.

One unit per (split, task, sample) for one decoding mode, keyed by the policy's weights, the decoding
settings, the sample index, the seed, the step cap and the prompt, so re-running an evaluation replays
nothing it has. The same template as the build stages: the cache, progress and failures are handled once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from steca_data.core.keys import unit_key
from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart, PromptConfig
from steca_data.executors import LoadedPolicy
from steca_data.policies.base import Policy, SamplingParams
from steca_data.stages.base import BuildContext, Emit, Stage, Unit
from steca_data.stages.play import play_units

EVAL_VERSION = "1"


@dataclass(frozen=True)
class Mode:
    name: str  # greedy | sampled T=… | random
    params: SamplingParams
    samples: int  # episodes per task


def eval_key(policy_id: str, task, mode: Mode, sample: int, seed: int, max_steps: int, prompt: PromptConfig) -> str:
    return unit_key(
        "eval",
        EVAL_VERSION,
        task_id=task.task_id,
        policy=policy_id,
        params=asdict(mode.params),
        sample=sample,
        seed=seed,
        max_steps=max_steps,
        prompt=asdict(prompt),
        prompt_version=prompt.version_for(task.env, task.game),
    )


class EvalStage(Stage):
    """All splits of one mode in one stage: bigger batches, one tail of stragglers instead of one per split."""

    name = "eval"
    table = "trajectories"
    unit_name = "episodes"
    records_failures = False  # a missing episode would bias the score: fail loudly instead

    def __init__(self, policy: Policy, mode: Mode, splits: list[str], max_steps: int, limit: int | None, seed: int):
        self.policy, self.mode, self.splits = policy, mode, splits
        self.max_steps, self.limit, self.seed = max_steps, limit, seed
        self.label = f"eval {mode.name}"

    def units(self, ctx: BuildContext) -> list[Unit]:
        prompt = PromptConfig.from_recipe(ctx.recipe)
        return [
            Unit(
                eval_key(self.policy.policy_id, task, self.mode, k, self.seed, steps, prompt),
                task.task_id,
                (split, EpisodeStart(task, seed=self.seed + k, max_steps=steps)),
            )
            for split in self.splits
            for task in ctx.tasks[split][: self.limit]
            for steps in [ctx.recipe.env.episode_steps(task, self.max_steps)]
            for k in range(self.mode.samples)
        ]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        prompt = PromptConfig.from_recipe(ctx.recipe)
        starts = [u.item[1] for u in todo]
        play_units(ctx, LoadedPolicy(self.policy), todo, starts, self.mode.params, self.max_steps, prompt, emit, "eval")

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        ctx.cache.put_trajectory(unit.key, result)
        return True

    def episodes(self, ctx: BuildContext) -> dict[str, list[Trajectory]]:
        """split -> the stored episodes of every unit (after ``run``)."""
        units = self.units(ctx)
        stored = ctx.cache.get_trajectories([u.key for u in units])
        out: dict[str, list[Trajectory]] = {split: [] for split in self.splits}
        for u in units:
            if u.key in stored:
                out[u.item[0]].append(stored[u.key])
        return out
