"""Assembly: trajectories in the cache become training rows that follow the ``schemas`` row models."""

from __future__ import annotations

from .prompts import PROMPT_VERSIONS, render_messages
from .recipe import Recipe
from .schemas import ExpertRow, Provenance, Trajectory


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
