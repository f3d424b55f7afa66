"""The executor: compiles a recipe into its stages and runs them against the build's DuckDB cache.

Stages never talk to each other directly: each reads what earlier stages left in the cache. That keeps
them independently cacheable and lets ``plan`` answer "what would run?" without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from steca_data.build.assemble import expert_rows
from steca_data.build.output import OutputResult, write_outputs
from steca_data.cache.store import Cache
from steca_data.core.progress import Reporter
from steca_data.recipe.model import Recipe
from steca_data.stages.base import BuildContext, Stage, StagePlan, StageResult
from steca_data.stages.experts import ExpertStage, GoldStage, ImportStage


@dataclass
class BuildSummary:
    results: list[StageResult] = field(default_factory=list)
    output: OutputResult | None = None

    @property
    def computed(self) -> int:
        return sum(r.computed for r in self.results)

    @property
    def cached(self) -> int:
        return sum(r.cached for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)


def compile_stages(recipe: Recipe) -> list[Stage]:
    if recipe.experts.source == "sharegpt":
        if recipe.uses_engine:
            raise ValueError("datasets dc/de/ds need experts.source 'env' (the engine replays expert prefixes)")
        return [ImportStage()]
    stages: list[Stage] = [GoldStage(), ExpertStage()]
    if recipe.uses_engine:
        from steca_data.stages.agent import BaseAgentStage
        from steca_data.stages.engine import ProposalStage, ReflectionStage, RolloutStage

        stages += [BaseAgentStage(), ProposalStage(), RolloutStage()]
        if "dc" in recipe.datasets:
            stages.append(ReflectionStage())
    return stages


class Builder:
    def __init__(self, recipe: Recipe, reporter: Reporter | None = None, retry_failed: bool = False):
        self.recipe = recipe
        self.reporter = reporter or Reporter()
        self.retry_failed = retry_failed
        self.stages = compile_stages(recipe)

    def _context(self, cache: Cache) -> BuildContext:
        return BuildContext(self.recipe, cache, self.reporter, retry_failed=self.retry_failed)

    def plan(self) -> list[StagePlan]:
        """Per stage: units in total and already cached. Computes nothing, starts no simulator.

        Later stages are planned as if earlier ones had run (their keys depend only on the recipe)."""
        with Cache(self.recipe.cache_path) as cache:
            ctx = self._context(cache)
            return [stage.plan(ctx) for stage in self.stages]

    def expert_trajectories(self, ctx: BuildContext):
        stage = self.stages[1] if len(self.stages) > 1 else self.stages[0]
        keys = [k for _, k in stage.units(ctx)] if isinstance(stage, ExpertStage) else stage.units(ctx)
        return ctx.cache.get_trajectories(keys)

    def assemble(self, ctx: BuildContext) -> dict[str, list[dict]]:
        datasets = {}
        if "expert" in self.recipe.datasets:
            datasets["expert"] = expert_rows(self.recipe, self.expert_trajectories(ctx))
        if self.recipe.uses_engine:
            from steca_data.build.assemble import deviation_rows, engine_rows
            from steca_data.stages.engine import _engine

            engine = _engine(ctx)
            ctx.cache.replace_rows("deviations", deviation_rows(engine))
            datasets.update(engine_rows(self.recipe, engine))
        return datasets

    def build(self) -> BuildSummary:
        summary = BuildSummary()
        with Cache(self.recipe.cache_path) as cache:
            ctx = self._context(cache)
            try:
                cache.set_meta("recipe_fingerprint", self.recipe.fingerprint())
                cache.set_meta("env_version", ctx.env_version)
                for stage in self.stages:
                    summary.results.append(stage.run(ctx))
                datasets = self.assemble(ctx)
                summary.output = write_outputs(
                    self.recipe, datasets, ctx.env_version, cache.get_meta("output_fingerprint")
                )
                cache.set_meta("output_fingerprint", summary.output.fingerprint)
            finally:
                ctx.close()
        return summary
