"""Trajectories as dataset rows: chat messages with per-turn loss, a reward weight and provenance.

Shared by the expert dataset, the warm-up (which trains on exactly those rows) and the engine's assembly.
"""

from __future__ import annotations

from steca_data.core.schemas import ExpertRow, Provenance, Trajectory
from steca_data.envs.prompting import prompt_version, render_messages


def provenance(
    recipe, traj: Trajectory, step: int | None, trajectory_ids: list[str], rollout_ids: list[str] | None = None
) -> Provenance:
    return Provenance(
        task_id=traj.task.task_id,
        split=traj.task.split,
        step=step,
        trajectory_ids=trajectory_ids,
        rollout_ids=rollout_ids or [],
        recipe_hash=recipe.fingerprint(),
        prompt_version=prompt_version(traj.task.env, traj.task.game),
    )


def expert_rows(recipe, trajectories: dict[str, Trajectory]) -> list[dict]:
    """One row per expert trajectory, loss on every assistant turn, weight 1."""
    rows = []
    for key, traj in sorted(trajectories.items(), key=lambda kv: (kv[1].task.task_id, kv[0])):
        row = ExpertRow(
            id=key,
            messages=render_messages(traj, include_example=recipe.prompt.include_example),
            reward_weight=1.0,
            provenance=provenance(recipe, traj, None, [traj.trajectory_id]),
            outcome_reward=traj.outcome_reward,
            num_steps=len(traj.steps),
        )
        rows.append(row.model_dump(mode="json"))
    return rows
