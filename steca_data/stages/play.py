"""Playing episodes for a stage: the one place where units become episode starts and come back as results.

Proposals, rollouts and evaluation all compute their units by playing episodes; the build's executor decides
where they are played (threads beside one engine, or Ray workers). This maps the executor's per-episode
callback onto the stage template's ``emit``, its failures onto failed units, and a start played twice (after a
worker died) onto one result.
"""

from __future__ import annotations

from collections.abc import Callable

from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart, PromptConfig
from steca_data.executors import PlayJob, PolicySource
from steca_data.policies.base import SamplingParams
from steca_data.stages.base import BuildContext, Emit, Unit


def play_units(
    ctx: BuildContext,
    source: PolicySource,
    todo: list[Unit],
    starts: list[EpisodeStart],
    params: SamplingParams,
    max_steps: int,
    prompt: PromptConfig,
    emit: Emit,
    kind: str,
    follow_up: Callable[[Unit], list[tuple[Unit, EpisodeStart]]] | None = None,
) -> None:
    """Play ``starts[i]`` for ``todo[i]``; each finished episode (or its failure) is emitted at once.

    ``follow_up(unit)``, called once the unit's result is stored, may return new units (with their starts)
    that this result made necessary; they are played in the same run."""
    units = list(todo)
    delivered: set[int] = set()

    def on_result(i: int, value) -> None:
        if i in delivered:  # played twice (its worker died after playing it): the first result stands
            return
        delivered.add(i)
        emit(units[i], value)

    def more(i: int, _traj: Trajectory) -> list[EpisodeStart]:
        new = follow_up(units[i]) if follow_up is not None else []
        units.extend(unit for unit, _ in new)
        return [start for _, start in new]

    job = PlayJob(source, params, max_steps, prompt, kind)
    ctx.executor.play(job, starts, on_result, more if follow_up is not None else None)
