"""The proposal stage: the base agent's own action at every expert position t, from the prefix e_{1:t-1}."""

from __future__ import annotations

from steca_data.cache.store import Table
from steca_data.core.keys import seed_of
from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart
from steca_data.stages.base import BuildContext, Emit, Unit
from steca_data.stages.play import play_units
from steca_data.stages.walks import EngineStage, engine_of

PROPOSALS = Table(
    "proposals",
    """CREATE TABLE IF NOT EXISTS proposals (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, expert_action VARCHAR, thought VARCHAR,
            action VARCHAR, observation VARCHAR, valid BOOLEAN, unparsable BOOLEAN, policy_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
    "The base agent's own action at each expert position t, from the expert prefix e_{1:t-1}.",
)


class ProposalStage(EngineStage):
    name = "proposals"
    table = "proposals"
    tables = (PROPOSALS,)
    unit_name = "prefixes"

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [Unit(key, w.task.task_id, (w, t)) for w, t, key in engine_of(ctx).proposal_units()]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        engine = engine_of(ctx)
        params = engine.sampling(ctx.recipe.proposals.temperature)
        # one policy step after each prefix, every prefix in flight at once (each episode stops at its t)
        starts = [
            EpisodeStart(w.task, list(w.expert.steps[: t - 1]), seed_of(u.key), max_steps=t)
            for u in todo
            for w, t in [u.item]
        ]
        max_t = max(u.item[1] for u in todo)
        play_units(ctx, engine.agent, todo, starts, params, max_t, engine.prompt, emit, "rollout")

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        walk, t = unit.item
        step = result.steps[t - 1] if len(result.steps) >= t else None
        row = {
            "key": unit.key,
            "task_id": walk.task.task_id,
            "step": t,
            "expert_action": walk.actions[t - 1],
            "thought": step.thought if step else "",
            "action": step.action if step else "",
            "observation": step.observation if step else "",
            "valid": step.valid if step else False,
            "unparsable": bool(result.unparsable_actions),
            "policy_id": engine_of(ctx).policy_id,
        }
        ctx.cache.put_rows("proposals", [row])
        return True
