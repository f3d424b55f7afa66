"""The engine's units behind a build, read back from its cache without computing anything.

The preference pairs (IPR's step pairs, ETO's trajectory pairs, STeCa's deviated continuations) are not
rows of the build: they come from the same proposals and rollouts that Dc/De/Ds came from. To find
exactly the units this build used, the view asks the engine itself (its walks, keys and values) over the
build's cache opened read-only, with the stage outputs its manifest records published and nothing run or
re-read from the recipe's inputs (``build.manifest.open_build_dir``).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from steca_data.cache.store import Cache
from steca_data.core.schemas import Trajectory

from .build_dir import ExportError

if TYPE_CHECKING:
    from steca_data.stages.walks import Engine, Walk

    from .build_dir import BuildDir


@dataclass(frozen=True)
class StepComparison:
    """At expert position t: the expert step and the agent's proposal, each with its Monte Carlo value."""

    walk: Walk
    t: int
    proposal: dict  # the stored proposal row: thought, action, observation, ...
    expert_value: float  # V(t): mean outcome after e_{1:t}
    proposal_value: float  # Q(t): mean outcome after e_{1:t-1} + proposal
    expert_key: str
    proposal_key: str


class EngineView:
    """Walks, proposals, step values and rollouts of one build, from its cache (opened read-only)."""

    def __init__(self, build: BuildDir):
        self.build = build
        self._stack = ExitStack()

    def close(self) -> None:
        self._stack.close()

    @cached_property
    def cache(self) -> Cache:
        """The build's cache, read-only (or the handle the build shares): enough for rows' trajectories and
        rollouts."""
        if self.build.shared_cache is not None:
            return self.build.shared_cache
        path = self.build.require_cache("this export")
        try:
            return self._stack.enter_context(Cache(path, read_only=True))
        except Exception as exc:  # noqa: BLE001 - e.g. a build still holding the write lock
            raise ExportError(f"{path}: cannot open the build's cache read-only: {exc}") from None

    @cached_property
    def _context(self):
        """A build context with every stage's output published over the same cache file, running nothing."""
        from steca_data.build.builder import open_build
        from steca_data.build.manifest import open_build_dir

        path = self.build.require_cache("this export")
        recipe = self.build.recipe
        recipe = recipe.model_copy(update={"output": recipe.output.model_copy(update={"cache": str(path)})})
        try:
            if self.build.manifest is not None:
                shared = self.build.shared_cache
                return self._stack.enter_context(open_build_dir(recipe, self.build.path, path, shared))
            # a build written before build.json: its stages re-derived from the recipe's inputs, where they still are
            return self._stack.enter_context(open_build(recipe, read_only=True))
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"{path}: cannot read the build's stages from its cache: {exc}") from None

    @cached_property
    def engine(self) -> Engine:
        from steca_data.stages.walks import engine_of

        if not self.build.recipe.uses_engine:
            raise ExportError(f"{self.build.path}: the recipe builds no dc/de/ds, so its cache holds no rollouts")
        try:
            engine = engine_of(self._context)
        except Exception as exc:  # noqa: BLE001 - an output the build never published, a moved game tree...
            raise ExportError(f"{self.build.path}: cannot read the engine's units from the cache: {exc}") from None
        if engine.agent is None:
            raise ExportError(f"{self.build.path}: the build's base agent (its warm-up) is not in the cache")
        return engine

    # ------------------------------------------------------------------------------------------ reading
    @cached_property
    def walks(self) -> dict[str, Walk]:
        """task id -> the expert trajectory the engine walked along."""
        try:
            walks = self.engine.walks
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a game tree that is not here any more
            raise ExportError(f"{self.build.path}: cannot list the build's tasks: {exc}") from None
        if not walks and any(self.build.rows.values()):
            raise ExportError(
                f"{self.build.path}: none of the build's expert walks is in its cache "
                "(was it built with another environment version or game tree?)"
            )
        return {w.task.task_id: w for w in walks}

    def walk(self, task_id: str) -> Walk:
        if task_id not in self.walks:
            raise ExportError(f"{self.build.path}: task {task_id} has rows but no expert walk in the cache")
        return self.walks[task_id]

    def rollouts(self, keys: list[str]) -> dict[str, Trajectory]:
        """rollout key -> the whole episode (prefix steps included, as the engine stored it)."""
        if not keys:
            return {}
        rows = self.cache.sql("SELECT key, data FROM rollouts WHERE key IN (SELECT unnest(?))", [keys]).fetchall()
        return {k: Trajectory.model_validate_json(d) for k, d in rows}

    def rollout(self, key: str) -> Trajectory:
        found = self.rollouts([key])
        if key not in found:
            raise ExportError(f"{self.build.path}: rollout {key} is named by a row but missing from the cache")
        return found[key]

    @cached_property
    def _scored(self):
        engine = self.engine
        proposals = engine.proposals()
        prefixes = engine.scored_prefixes(proposals)
        return proposals, prefixes, engine.values(prefixes)

    def step_comparisons(self) -> list[StepComparison]:
        """Every expert position whose proposal differs from the expert and both have all their rollouts."""
        proposals, prefixes, values = self._scored
        by_slot = {(p.walk.task.task_id, p.kind, p.step): p for p in prefixes}
        out = []
        for task_id, walk in sorted(self.walks.items()):
            for t in range(1, len(walk.expert.steps) + 1):
                expert, proposal = by_slot.get((task_id, "expert", t)), by_slot.get((task_id, "proposal", t))
                if expert is None or proposal is None or expert.key not in values or proposal.key not in values:
                    continue
                out.append(
                    StepComparison(
                        walk=walk,
                        t=t,
                        proposal=proposals[(task_id, t)],
                        expert_value=values[expert.key][0],
                        proposal_value=values[proposal.key][0],
                        expert_key=expert.key,
                        proposal_key=proposal.key,
                    )
                )
        return out

    def explorations(self) -> dict[str, list[tuple[str, Trajectory]]]:
        """task id -> [(rollout key, episode)] played from the start state, by sample index."""
        _, prefixes, values = self._scored
        keys = {
            p.walk.task.task_id: values[p.key][2]
            for p in prefixes
            if p.kind == "expert" and p.step == 0 and p.key in values
        }
        episodes = self.rollouts([k for ks in keys.values() for k in ks])
        return {task: [(k, episodes[k]) for k in ks] for task, ks in sorted(keys.items())}
