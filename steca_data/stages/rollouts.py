"""The rollout stage: N Monte Carlo continuations from every scored prefix.

Scored prefixes are the expert prefixes e_{1:k} (k = 0 is the start state, whose rollouts double as the
explorations behind De and Ds) and e_{1:t-1} + each proposal that differs from the expert.
"""

from __future__ import annotations

import json

from steca_data.core.keys import prefix_key, seed_of
from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart
from steca_data.stages.base import BuildContext, Emit, Unit
from steca_data.stages.play import play_units
from steca_data.stages.walks import EngineStage, engine_of


class RolloutStage(EngineStage):
    name = "rollouts"
    table = "rollouts"
    unit_name = "rollouts"

    def note(self, ctx: BuildContext) -> str:
        engine = engine_of(ctx)
        missing = sum(len(w.expert.steps) for w in engine.walks) - len(engine.proposals())
        return f"+ up to {missing * ctx.recipe.rollouts.n} for proposals not made yet" if missing else ""

    def prepare(self, ctx: BuildContext) -> None:
        engine = engine_of(ctx)
        rows = [
            {
                "key": p.key,
                "prefix_key": prefix_key(p.walk.task.task_id, list(p.steps)),
                "task_id": p.walk.task.task_id,
                "kind": p.kind,
                "step": p.step,
                "prefix_len": len(p.steps),
                "action": p.steps[-1].action if p.steps else "",
                "thought": p.steps[-1].thought if p.steps else "",
                "policy_id": engine.policy_id,
                "samples": p.samples,
            }
            for p in engine.scored_prefixes()
        ]
        ctx.cache.put_rows("scored_prefixes", rows)

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [
            Unit(key, p.walk.task.task_id, (p, sample))
            for p in engine_of(ctx).scored_prefixes()
            for sample, key in enumerate(p.rollout_keys())
        ]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        engine = engine_of(ctx)
        starts = [EpisodeStart(u.item[0].walk.task, list(u.item[0].steps), seed=seed_of(u.key)) for u in todo]
        params = engine.sampling(ctx.recipe.rollouts.temperature)
        play_units(ctx, engine.agent.policy, todo, starts, params, engine.max_steps, engine.prompt, emit, "rollout")

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        prefix, sample = unit.item
        row = {
            "key": unit.key,
            "score_key": prefix.key,
            "task_id": prefix.walk.task.task_id,
            "kind": prefix.kind,
            "step": prefix.step,
            "sample_index": sample,
            "seed": seed_of(unit.key),
            "policy_id": engine_of(ctx).policy_id,
            "prefix_len": len(prefix.steps),
            "num_steps": len(result.steps),
            "outcome_reward": result.outcome_reward,
            "success": result.success,
            "actions": json.dumps([s.action for s in result.steps[len(prefix.steps) :]]),
            "data": result.model_dump_json(),
        }
        ctx.cache.put_rows("rollouts", [row])
        return True
