"""Playing episodes for a stage: the one place where units become episode starts and come back as results.

Proposals, rollouts and evaluation all compute their units by playing episodes through the episode runner
(every pending episode in flight, each handed back the moment it ends). This maps the runner's
per-episode callback onto the stage template's ``emit``, and its failures onto failed units.
"""

from __future__ import annotations

from collections.abc import Callable

from steca_data.core.schemas import Trajectory
from steca_data.envs import SessionPool
from steca_data.episodes.runner import EpisodeError, EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import Policy, SamplingParams
from steca_data.stages.base import BuildContext, Emit, Unit


def play_units(
    ctx: BuildContext,
    policy: Policy,
    todo: list[Unit],
    starts: list[EpisodeStart],
    params: SamplingParams,
    max_steps: int,
    prompt: PromptConfig,
    emit: Emit,
    source: str,
    follow_up: Callable[[Unit], list[tuple[Unit, EpisodeStart]]] | None = None,
) -> None:
    """Play ``starts[i]`` for ``todo[i]``; each finished episode (or its failure) is emitted at once.

    ``follow_up(unit)``, called once the unit's result is stored, may return new units (with their starts)
    that this result made necessary; they are played in the same run."""
    units = list(todo)

    def more(i: int, _traj: Trajectory) -> list[EpisodeStart]:
        new = follow_up(units[i]) if follow_up is not None else []
        units.extend(unit for unit, _ in new)
        return [start for _, start in new]

    with SessionPool(ctx.backend, ctx.recipe.env.workers) as pool:
        try:
            run_episodes(
                pool,
                policy,
                starts,
                params,
                max_steps=max_steps,
                prompt=prompt,
                on_done=lambda i, traj: emit(units[i], traj),
                source=source,
                follow_up=more if follow_up is not None else None,
            )
        except EpisodeError as exc:
            for i, error in sorted(exc.failures.items()):
                emit(units[i], error)
