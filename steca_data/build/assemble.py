"""Assembly: trajectories in the cache become training rows that follow the ``schemas`` row models."""

from __future__ import annotations

from steca_data.cache.store import unit_key
from steca_data.core.prompts import PROMPT_VERSIONS, render_messages
from steca_data.core.schemas import CalibrationRow, ExpertRow, ExpertSubRow, ExploredRow, Provenance, Step, Trajectory
from steca_data.recipe.model import Recipe


def expert_rows(recipe: Recipe, trajectories: dict[str, Trajectory]) -> list[dict]:
    """One row per expert trajectory, loss on every assistant turn, weight 1."""
    rows = []
    for key, traj in sorted(trajectories.items(), key=lambda kv: (kv[1].task.task_id, kv[0])):
        prompt_version = PROMPT_VERSIONS.get(traj.task.env, "custom")
        row = ExpertRow(
            id=key,
            messages=render_messages(traj, include_example=recipe.prompt.include_example),
            reward_weight=1.0,
            provenance=Provenance(
                task_id=traj.task.task_id,
                split=traj.task.split,
                trajectory_ids=[traj.trajectory_id],
                recipe_hash=recipe.fingerprint(),
                prompt_version=prompt_version,
            ),
            outcome_reward=traj.outcome_reward,
            num_steps=len(traj.steps),
        )
        rows.append(row.model_dump(mode="json"))
    return rows


# ------------------------------------------------------------------------------------------------ engine
def _provenance(
    recipe: Recipe, traj: Trajectory, step: int | None, trajectory_ids: list[str], rollout_ids: list[str]
) -> Provenance:
    return Provenance(
        task_id=traj.task.task_id,
        split=traj.task.split,
        step=step,
        trajectory_ids=trajectory_ids,
        rollout_ids=rollout_ids,
        recipe_hash=recipe.fingerprint(),
        prompt_version=PROMPT_VERSIONS.get(traj.task.env, "custom"),
    )


def deviation_rows(engine) -> list[dict]:
    """The verdicts of this build, for the derived ``deviations`` table."""
    delta = engine.recipe.deviation.delta
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
        }
        for task_id, verdicts in engine.verdicts().items()
        for v in verdicts
    ]


def _explorations(engine) -> dict[str, list[tuple[str, Trajectory]]]:
    """task id -> [(rollout key, trajectory)] of the episodes played from the start state."""
    keys = {p.key: p for p in engine.scored_prefixes() if p.kind == "expert" and p.step == 0}
    rows = engine.ctx.cache.sql(
        "SELECT key, task_id, data FROM rollouts WHERE score_key IN (SELECT unnest(?)) ORDER BY task_id, sample_index",
        [list(keys)],
    ).fetchall()
    out: dict[str, list[tuple[str, Trajectory]]] = {}
    for key, task_id, data in rows:
        out.setdefault(task_id, []).append((key, Trajectory.model_validate_json(data)))
    return out


def engine_rows(recipe: Recipe, engine) -> dict[str, list[dict]]:
    """Dc, De and Ds rows from the cache, with their nDTW reward weights (no rollout is computed here)."""
    from steca_data.core.calibration import first_error_step
    from steca_data.core.distance import ndtw, step_distance

    eta, dist = recipe.reward.eta, step_distance(recipe.reward.distance, recipe.reward.embedding_model)
    include = recipe.prompt.include_example
    walks = {w.task.task_id: w for w in engine.walks}
    out: dict[str, list[dict]] = {"dc": [], "de": [], "ds": []}

    if "dc" in recipe.datasets:
        proposals = engine.proposals()
        prefixes = {(p.walk.task.task_id, p.kind, p.step): p for p in engine.scored_prefixes(proposals)}
        values = engine.values(list(prefixes.values()))
        reflections = dict(engine.ctx.cache.sql("SELECT key, thought FROM reflections WHERE status = 'ok'").fetchall())
        for task_id, verdicts in sorted(engine.verdicts().items()):
            first = next((v for v in verdicts if v.first), None)
            if first is None:
                continue
            w, t = walks[task_id], first.step
            proposal = proposals[(task_id, t)]
            reflection = reflections.get(engine.reflection_key(w, t, proposal))
            prefix = prefixes.get((task_id, "proposal", t))
            if reflection is None or prefix is None or prefix.key not in values:
                continue
            first_rollout_key = values[prefix.key][2][0]
            (deviated_data,) = engine.ctx.cache.sql(
                "SELECT data FROM rollouts WHERE key = ?", [first_rollout_key]
            ).fetchone()
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
            out["dc"].append(
                CalibrationRow(
                    id=unit_key("dc", "1", reflection=engine.reflection_key(w, t, proposal), rollout=first_rollout_key),
                    messages=render_messages(traj, include_example=include, loss_from_step=t),
                    reward_weight=1.0 + eta * d,
                    provenance=_provenance(recipe, w.expert, t, [w.expert.trajectory_id], [first_rollout_key]),
                    deviated_action=proposal["action"],
                    expert_action=w.actions[t - 1],
                    reflection=reflection,
                    distance=d,
                ).model_dump(mode="json")
            )

    if "de" in recipe.datasets or "ds" in recipe.datasets:
        for task_id, episodes in sorted(_explorations(engine).items()):
            w = walks[task_id]
            seen_success, seen_error = set(), set()
            for key, traj in episodes:
                agent_actions = [s.action for s in traj.steps]
                if traj.success and "de" in recipe.datasets and tuple(agent_actions) not in seen_success:
                    seen_success.add(tuple(agent_actions))
                    d = ndtw(agent_actions, w.actions, dist)
                    out["de"].append(
                        ExploredRow(
                            id=key,
                            messages=render_messages(traj, include_example=include),
                            reward_weight=1.0 - eta * d,
                            provenance=_provenance(recipe, traj, None, [w.expert.trajectory_id], [key]),
                            expert_actions=w.actions,
                            distance=d,
                        ).model_dump(mode="json")
                    )
                if not traj.success and "ds" in recipe.datasets:
                    t = first_error_step(w.actions, agent_actions)
                    if t is None or t in seen_error:
                        continue
                    seen_error.add(t)
                    d = ndtw(w.actions[t - 1 :], agent_actions[t - 1 :], dist)
                    out["ds"].append(
                        ExpertSubRow(
                            id=unit_key("ds", "1", rollout=key, step=t),
                            messages=render_messages(w.expert, include_example=include, loss_from_step=t - 1),
                            reward_weight=1.0 + eta * d,
                            provenance=_provenance(recipe, w.expert, t, [w.expert.trajectory_id], [key]),
                            agent_actions=agent_actions,
                            distance=d,
                        ).model_dump(mode="json")
                    )
    return {name: rows for name, rows in out.items() if name in recipe.datasets}
