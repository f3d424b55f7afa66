"""The rollout stage: N Monte Carlo continuations from every scored prefix.

Scored prefixes are the expert prefixes e_{1:k} (k = 0 is the start state, whose rollouts double as the
explorations behind De and Ds) and e_{1:t-1} + each proposal that differs from the expert.

With ``rollouts.scope: first_deviation`` the stage runs in rounds: each round rolls out what the tasks'
first deviations still need given the values stored so far (``Engine.rollout_prefixes``), until a round
lists nothing new (the template's ``settles``). Keys and seeds are those of ``scope: all``, so both scopes
share one cache.

With ``rollouts.adaptive`` the rounds also add samples: a verdict's two prefixes get one more rollout each
per round until the verdict is decided (``core.calibration.AdaptiveRule``), so the stage settles in rounds
whatever the scope. Sample i of a prefix has the same key and seed as in a fixed-N build: an adaptive
build's rollouts are a prefix, row for row, of the fixed n_max build's.
"""

from __future__ import annotations

import json
from collections import Counter

from steca_data.cache.store import Table
from steca_data.core.keys import prefix_key, seed_of
from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart
from steca_data.stages.base import BuildContext, Emit, Unit
from steca_data.stages.play import play_units
from steca_data.stages.walks import DEVIATIONS, Engine, EngineStage, ScoredPrefix, engine_of

SCORED_PREFIXES = Table(
    "scored_prefixes",
    """CREATE TABLE IF NOT EXISTS scored_prefixes (
            key VARCHAR PRIMARY KEY, prefix_key VARCHAR, task_id VARCHAR, kind VARCHAR, step INTEGER,
            prefix_len INTEGER, action VARCHAR, thought VARCHAR, policy_id VARCHAR, samples INTEGER)""",
    "Each (prefix, policy, sampling) whose Monte Carlo value is estimated; kind expert (step = prefix "
    "length k, 0 = start state) or proposal (step = position t of the agent's action).",
)

ROLLOUTS = Table(
    "rollouts",
    """CREATE TABLE IF NOT EXISTS rollouts (
            key VARCHAR PRIMARY KEY, score_key VARCHAR, task_id VARCHAR, kind VARCHAR, step INTEGER,
            sample_index INTEGER, seed BIGINT, policy_id VARCHAR, prefix_len INTEGER, num_steps INTEGER,
            outcome_reward DOUBLE, success BOOLEAN, actions JSON, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
    "One Monte Carlo continuation (stored the moment it ends); `actions` are those after the prefix.",
)

STEP_REWARDS = Table(
    "step_rewards",
    """CREATE OR REPLACE VIEW step_rewards AS
           SELECT p.task_id, p.kind, p.step, p.prefix_len, p.action, p.policy_id, count(r.key) AS n,
                  coalesce(sum(r.success::INTEGER), 0) AS successes, avg(r.outcome_reward) AS reward,
                  p.key AS score_key
           FROM scored_prefixes p LEFT JOIN rollouts r ON r.score_key = p.key
           GROUP BY ALL""",
    "Monte Carlo step reward per scored prefix: n rollouts, successes, mean outcome.",
    view=True,
)

EXPERT_STEP_REWARDS = Table(
    "expert_step_rewards",
    """CREATE OR REPLACE VIEW expert_step_rewards AS
           SELECT s.*, t.num_steps - s.step AS steps_remaining
           FROM step_rewards s
           JOIN (SELECT task_id, max(step) AS num_steps FROM scored_prefixes WHERE kind = 'expert'
                 GROUP BY task_id) t USING (task_id)
           WHERE s.kind = 'expert'""",
    "Step rewards of expert prefixes with steps remaining to completion (the paper's Figure 3).",
    view=True,
)


class RolloutStage(EngineStage):
    name = "rollouts"
    table = "rollouts"
    tables = (SCORED_PREFIXES, ROLLOUTS, DEVIATIONS, STEP_REWARDS, EXPERT_STEP_REWARDS)
    unit_name = "rollouts"
    settles = True  # first_deviation, adaptive: what a task needs next depends on the values stored so far

    def note(self, ctx: BuildContext) -> str:
        engine = engine_of(ctx)
        missing = sum(len(w.expert.steps) for w in engine.walks) - len(engine.proposals())
        spec = ctx.recipe.rollouts
        notes = [f"+ up to {missing * spec.cap} for proposals not made yet" if missing else ""]
        if spec.scope == "first_deviation":
            notes.append("first round; later positions only while no deviation is found")
        if spec.adaptive:
            notes.append(f"first round; up to {spec.cap} per prefix while a verdict is undecided")
        return "; ".join(filter(None, notes))

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
        return _units(engine_of(ctx).rollout_prefixes())

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        engine = engine_of(ctx)
        params = engine.sampling(ctx.recipe.rollouts.temperature)
        spec = ctx.recipe.rollouts
        follow_up = self._follow_up(ctx, todo, emit) if spec.scope == "first_deviation" or spec.adaptive else None
        starts = [_start(u, engine) for u in todo]
        play_units(ctx, engine.agent, todo, starts, params, engine.max_steps, engine.prompt, emit, "rollout", follow_up)

    def _follow_up(self, ctx: BuildContext, todo: list[Unit], emit: Emit):
        """Rounds without waiting for a round to end: once a prefix has all its rollouts, the units its task
        needs next (``first_deviation``: the next differing proposal, if no deviation was found; ``adaptive``:
        the next sample of an undecided verdict) join the running batch. The template's passes
        (``settles``) still catch what this misses (e.g. after a failed unit)."""
        engine = engine_of(ctx)
        proposals = engine.proposals()
        listed = {u.key for u in todo} | self.tried
        outstanding = Counter(u.item[0].key for u in todo)

        def follow_up(unit: Unit) -> list[tuple[Unit, EpisodeStart]]:
            prefix = unit.item[0]
            outstanding[prefix.key] -= 1
            while outstanding[prefix.key] <= 0:
                fresh = [u for u in _units(engine.rollout_prefixes([prefix.walk], proposals)) if u.key not in listed]
                if not fresh:
                    return []
                listed.update(u.key for u in fresh)
                done = self.done(ctx, [u.key for u in fresh])
                self.tried = self.tried | {u.key for u in fresh}  # later passes must not list them again
                new = [u for u in fresh if u.key not in done]
                if new:  # else: all of them were cached, so the walk can look further at once
                    outstanding.update(u.item[0].key for u in new)
                    emit.more(len(new))
                    return [(u, _start(u, engine)) for u in new]
            return []

        return follow_up

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


def _units(prefixes: list[ScoredPrefix]) -> list[Unit]:
    return [
        Unit(key, p.walk.task.task_id, (p, sample)) for p in prefixes for sample, key in enumerate(p.rollout_keys())
    ]


def _start(unit: Unit, engine: Engine) -> EpisodeStart:
    prefix: ScoredPrefix = unit.item[0]
    task = prefix.walk.task
    return EpisodeStart(task, list(prefix.steps), seed=seed_of(unit.key), max_steps=engine.episode_steps(task))
