"""The labels stage: ground truth for every proposal from the environment's planner (``labels.planner``).

One unit per proposal of this build: replay the expert prefix e_{1:t-1}, ask the planner for h(s) (its
remaining plan length), then h after the proposed action and h after the expert's action a_t, and label
both (``core.ground_truth``). The key hashes what determines the answer — the environment version and
planner, the task, the prefix's actions, the two actions — so a label is computed once whatever policy
proposed the action, and a rebuild or a new delta computes none. Labels join the ``deviations`` table in
SQL (the ``labelled_deviations`` view); ``steca-data report`` turns them into the rule's precision and recall.
"""

from __future__ import annotations

from steca_data.cache.store import Table
from steca_data.core.ground_truth import plan_label
from steca_data.core.keys import unit_key
from steca_data.envs.base import EnvSession, remaining_plan, replay
from steca_data.envs.registry import plugin
from steca_data.stages.base import BuildContext, Emit, Unit
from steca_data.stages.walks import DEVIATIONS, EngineStage, Walk, engine_of

LABEL_VERSION = "1"

PLAN_LABELS = Table(
    "plan_labels",
    """CREATE TABLE IF NOT EXISTS plan_labels (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, expert_action VARCHAR, action VARCHAR,
            h_before INTEGER, h_after INTEGER, label VARCHAR, h_after_expert INTEGER, expert_label VARCHAR,
            planner VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp)""",
    "Ground truth per proposal (`labels.planner`): the planner's remaining plan length h before the "
    "position t and after the proposed action and after the expert's, each labelled progress, detour or "
    "dead_end (h NULL: no plan).",
)
LABELLED_DEVIATIONS = Table(
    "labelled_deviations",
    """CREATE OR REPLACE VIEW labelled_deviations AS
           SELECT d.*, l.h_before, l.h_after, l.label, l.h_after_expert, l.expert_label
           FROM deviations d JOIN plan_labels l
             ON l.task_id = d.task_id AND l.step = d.step AND l.action = d.proposed_action
            AND l.expert_action = d.expert_action""",
    "The last build's verdicts with their ground-truth labels (builds with `labels.planner: true`).",
    view=True,
)


def plan_length(session: EnvSession) -> int | None:
    """h of the session's current state: the planner's plan length (0 at the goal), None when it has none."""
    plan = remaining_plan(session)
    return None if plan is None else len(plan)


def label_move(session: EnvSession, walk: Walk, t: int, action: str) -> dict:
    """h before position t and after ``action`` and after the expert's a_t, with their labels."""
    prefix, expert = walk.actions[: t - 1], walk.actions[t - 1]
    replay(session, walk.task, prefix)
    before = plan_length(session)
    session.step(expert)
    after_expert = plan_length(session)
    after = after_expert
    if action.strip() != expert.strip():
        replay(session, walk.task, prefix)
        session.step(action)
        after = plan_length(session)
    return {
        "h_before": before,
        "h_after": after,
        "label": plan_label(before, after),
        "h_after_expert": after_expert,
        "expert_label": plan_label(before, after_expert),
    }


class PlanLabelStage(EngineStage):
    name = "labels"
    table = "plan_labels"
    label, unit_name = "planner labels", "proposals"
    tables = (PLAN_LABELS, DEVIATIONS, LABELLED_DEVIATIONS)

    def _planner(self, ctx: BuildContext) -> str:
        return plugin(ctx.recipe.env.name).planner or ""

    def units(self, ctx: BuildContext) -> list[Unit]:
        engine = engine_of(ctx)
        walks = {w.task.task_id: w for w in engine.walks}
        planner, version = self._planner(ctx), ctx.env_version
        units = []
        for (task_id, t), proposal in sorted(engine.proposals().items()):
            walk, action = walks[task_id], proposal["action"]
            key = unit_key(
                "plan_label",
                LABEL_VERSION,
                env=version,
                planner=planner,
                task=task_id,
                prefix=walk.actions[: t - 1],
                action=action,
                expert=walk.actions[t - 1],
            )
            units.append(Unit(key, task_id, (walk, t, action)))
        return units

    def note(self, ctx: BuildContext) -> str:
        return "after the proposals" if not engine_of(ctx).proposals() else ""

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        ctx.executor.map_sessions(lambda backend, session, unit: label_move(session, *unit.item), todo, emit)

    def store(self, ctx: BuildContext, unit: Unit, result: dict) -> bool:
        walk, t, action = unit.item
        row = {
            "key": unit.key,
            "task_id": walk.task.task_id,
            "step": t,
            "expert_action": walk.actions[t - 1],
            "action": action,
            **result,
            "planner": self._planner(ctx),
        }
        ctx.cache.put_rows("plan_labels", [row])
        return True
