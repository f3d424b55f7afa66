"""Assembly: the engine's cached units become Dc, De and Ds rows (cheap; never computes a rollout).

- Dc: expert prefix e_{1:t-1}, the deviated step and what the environment answered (no loss), then the
  reflected step and the expert continuation (loss); r_c = 1 + eta * nDTW(e_c, e_d).
- De: each distinct successful exploration (loss on all its turns); r_e = 1 - eta * nDTW(e~, e).
- Ds: for each failed exploration, the expert continuation after its first differing action (one row per
  task and t); r_s = 1 + eta * nDTW(e_{t:m}, e^_{t:m}).
"""

from __future__ import annotations

from collections.abc import Callable

from steca_data.core.calibration import first_error_step
from steca_data.core.distance import ndtw, step_distance
from steca_data.core.keys import unit_key
from steca_data.core.schemas import CalibrationRow, ExpertSubRow, ExploredRow, Step, Trajectory
from steca_data.envs.prompting import render_messages
from steca_data.episodes.rows import provenance
from steca_data.stages.walks import Engine, FirstDeviation

Distance = Callable[[str, str], float]


def deviation_rows(engine: Engine) -> list[dict]:
    """The verdicts of this build, for the derived ``deviations`` table."""
    delta = engine.recipe.deviation.delta
    keys = {(p.walk.task.task_id, p.kind, p.step): p.key for p in engine.scored_prefixes()}
    reflections = {(f.walk.task.task_id, f.step): f.reflection_key for f in engine.first_deviations()}
    return [
        {
            "task_id": task_id,
            "step": v.step,
            "expert_action": v.expert_action,
            "proposed_thought": v.proposed_thought,
            "proposed_action": v.proposed_action,
            "reward_proposal": v.reward_proposal,
            "reward_expert_prev": v.reward_expert_prev,
            "delta": delta,
            "deviated": v.deviated,
            "first": v.first,
            "policy_id": engine.policy_id,
            "expert_score_key": keys.get((task_id, "expert", v.step - 1)),
            # a proposal equal to the expert's action is valued by the expert prefix it makes
            "proposal_score_key": keys.get((task_id, "proposal", v.step))
            if v.proposed_action.strip() != v.expert_action.strip()
            else keys.get((task_id, "expert", v.step)),
            "reflection_key": reflections.get((task_id, v.step)) if v.first else None,
        }
        for task_id, verdicts in engine.verdicts().items()
        for v in verdicts
    ]


def _explorations(engine: Engine) -> dict[str, list[tuple[str, Trajectory]]]:
    """task id -> [(rollout key, trajectory)] of the episodes played from the start state."""
    keys = [p.key for p in engine.explorations()]
    rows = engine.cache.sql(
        "SELECT key, task_id, data FROM rollouts WHERE score_key IN (SELECT unnest(?)) ORDER BY task_id, sample_index",
        [keys],
    ).fetchall()
    out: dict[str, list[tuple[str, Trajectory]]] = {}
    for key, task_id, data in rows:
        out.setdefault(task_id, []).append((key, Trajectory.model_validate_json(data)))
    return out


def _calibration_row(engine: Engine, first: FirstDeviation, reflection: str, rollout_key: str, dist) -> dict:
    recipe, w, t, proposal = engine.recipe, first.walk, first.step, first.proposal
    (deviated_data,) = engine.cache.sql("SELECT data FROM rollouts WHERE key = ?", [rollout_key]).fetchone()
    deviated = Trajectory.model_validate_json(deviated_data)
    e_d = [s.action for s in deviated.steps[t - 1 :]]  # (â_t, ê_{t+1:m})
    e_c = w.actions[t - 1 :]  # (a_t, e_{t+1:m})
    d = ndtw(e_c, e_d, dist)
    steps = [
        *w.expert.steps[: t - 1],
        Step(thought=proposal["thought"], action=proposal["action"], observation=proposal["observation"]),
        w.expert.steps[t - 1].model_copy(update={"thought": reflection}),
        *w.expert.steps[t:],
    ]
    traj = w.expert.model_copy(update={"steps": steps})
    return CalibrationRow(
        id=unit_key("dc", "1", reflection=first.reflection_key, rollout=rollout_key),
        messages=render_messages(traj, include_example=recipe.prompt.include_example, loss_from_step=t),
        reward_weight=1.0 + recipe.reward.eta * d,
        provenance=provenance(recipe, w.expert, t, [w.expert.trajectory_id], [rollout_key]),
        deviated_action=proposal["action"],
        expert_action=w.actions[t - 1],
        reflection=reflection,
        distance=d,
    ).model_dump(mode="json")


def dc_rows(engine: Engine, dist: Distance) -> list[dict]:
    """One row per first deviation whose reflection succeeded and whose rollouts are complete."""
    prefixes = {(p.walk.task.task_id, p.kind, p.step): p for p in engine.scored_prefixes()}
    values = engine.values(list(prefixes.values()))
    reflections = dict(engine.cache.sql("SELECT key, thought FROM reflections WHERE status = 'ok'").fetchall())
    rows = []
    for first in engine.first_deviations():
        reflection = reflections.get(first.reflection_key)
        prefix = prefixes.get((first.walk.task.task_id, "proposal", first.step))
        if reflection is None or prefix is None or prefix.key not in values:
            continue
        rows.append(_calibration_row(engine, first, reflection, values[prefix.key][2][0], dist))
    return rows


def exploration_rows(engine: Engine, dist: Distance, wanted: set[str]) -> dict[str, list[dict]]:
    """De rows from distinct successful explorations, Ds rows from failed ones."""
    recipe, eta, include = engine.recipe, engine.recipe.reward.eta, engine.recipe.prompt.include_example
    walks = {w.task.task_id: w for w in engine.walks}
    out: dict[str, list[dict]] = {"de": [], "ds": []}
    for task_id, episodes in sorted(_explorations(engine).items()):
        w = walks[task_id]
        seen_success, seen_error = set(), set()
        for key, traj in episodes:
            agent_actions = [s.action for s in traj.steps]
            if traj.success and "de" in wanted and tuple(agent_actions) not in seen_success:
                seen_success.add(tuple(agent_actions))
                d = ndtw(agent_actions, w.actions, dist)
                out["de"].append(
                    ExploredRow(
                        id=key,
                        messages=render_messages(traj, include_example=include),
                        reward_weight=1.0 - eta * d,
                        provenance=provenance(recipe, traj, None, [w.expert.trajectory_id], [key]),
                        expert_actions=w.actions,
                        distance=d,
                    ).model_dump(mode="json")
                )
            t = None if traj.success or "ds" not in wanted else first_error_step(w.actions, agent_actions)
            if t is None or t in seen_error:
                continue
            seen_error.add(t)
            d = ndtw(w.actions[t - 1 :], agent_actions[t - 1 :], dist)
            out["ds"].append(
                ExpertSubRow(
                    id=unit_key("ds", "1", rollout=key, step=t),
                    messages=render_messages(w.expert, include_example=include, loss_from_step=t - 1),
                    reward_weight=1.0 + eta * d,
                    provenance=provenance(recipe, w.expert, t, [w.expert.trajectory_id], [key]),
                    agent_actions=agent_actions,
                    distance=d,
                ).model_dump(mode="json")
            )
    return out


def engine_rows(engine: Engine) -> dict[str, list[dict]]:
    """Dc, De and Ds rows from the cache, with their nDTW reward weights."""
    recipe = engine.recipe
    dist = step_distance(recipe.reward.distance, recipe.reward.embedding_model)
    wanted = set(recipe.datasets)
    out = {"dc": dc_rows(engine, dist)} if "dc" in wanted else {}
    if wanted & {"de", "ds"}:
        out |= exploration_rows(engine, dist, wanted)
    return {name: out.get(name, []) for name in ("dc", "de", "ds") if name in wanted}
