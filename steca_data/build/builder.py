"""The executor: compiles a recipe into its stages and runs them against the build's DuckDB cache.

Stages never talk to each other directly: each publishes a typed output (declared in ``gives``) that later
stages read from the context (declared in ``needs``; the list is checked when compiled), and otherwise reads
what earlier stages left in the cache, in the tables each stage declares. That keeps them independently
cacheable and lets ``plan`` answer "what would run?" without running anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from steca_data.build.assemble import deviation_rows, engine_rows
from steca_data.build.faults import Faults
from steca_data.build.manifest import manifest_of, write_manifest
from steca_data.build.output import OutputResult, write_outputs
from steca_data.build.tables import build_tables
from steca_data.cache.store import Cache
from steca_data.core.cpu import machine_description
from steca_data.core.failures import BuildFailed
from steca_data.core.outputs import mark
from steca_data.core.progress import Reporter
from steca_data.envs.registry import plugin
from steca_data.envs.spec import EnvSpec
from steca_data.episodes.rows import expert_rows
from steca_data.recipe.model import Recipe
from steca_data.stages.agent import BaseAgentStage
from steca_data.stages.base import BuildContext, BuildHooks, Stage, StagePlan, StageResult, check_wiring, publish_output
from steca_data.stages.experts import ExpertStage, ExpertTrajectories, GoldStage
from steca_data.stages.games import GamesStage
from steca_data.stages.imports import BuiltExperts, ImportStage, check_import_source
from steca_data.stages.labels import PlanLabelStage
from steca_data.stages.proposals import ProposalStage
from steca_data.stages.reflections import ReflectionStage
from steca_data.stages.rollouts import RolloutStage
from steca_data.stages.walks import engine_of


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

    def failure_lines(self) -> list[str]:
        """``N failed: <stage>: <first error>`` for each stage with failures (plain text, not markup)."""
        failed = [r for r in self.results if r.failed]
        return [f"{r.failed} failed: {r.stage}: {r.first_error or 'see the failures table'}" for r in failed]


def check_failure_rate(recipe: Recipe, result: StageResult) -> None:
    """Stop the build when more of a stage's units failed than ``failures.max_rate`` allows: data built on
    a large hole is not the recipe's data. Everything stored so far stays in the cache."""
    limit = recipe.failures.max_rate
    if result.unit_failures and result.failure_rate > limit:
        raise BuildFailed(
            f"{result.stage}: {result.unit_failures} of {result.units} units failed ({result.failure_rate:.0%}, "
            f"more than failures.max_rate {limit:.0%}); first: {result.first_error}. Everything computed is "
            "cached; the next build retries the failed units"
        )


def compile_stages(recipe: Recipe, experts: BuiltExperts | None = None) -> list[Stage]:
    """The recipe's stage list, in order: the environment's generated games (when it makes its own), the
    expert source (``experts``: those of a finished build, read from its cache), then the engine when Dc/De/Ds
    are asked for.

    An import file that cannot be imported at all raises ``RecipeError`` here, before any work."""
    stages: list[Stage] = []
    if plugin(recipe.env.name).generated_data(recipe.env) is not None:
        stages.append(GamesStage())
    if experts is not None:
        stages.append(experts)
    elif recipe.experts.source == "sharegpt":
        check_import_source(recipe)
        stages.append(ImportStage())
    else:
        stages += [GoldStage(), ExpertStage()]
    if recipe.uses_engine:
        stages += [BaseAgentStage(), ProposalStage(), RolloutStage()]
        if recipe.labels.planner:
            stages.append(PlanLabelStage())
        if "dc" in recipe.datasets:
            stages.append(ReflectionStage())
    check_wiring(stages)
    return stages


def fault_hooks() -> BuildHooks:
    """The crashes the resume tests inject through environment variables (none in a user's build)."""
    faults = Faults()
    return BuildHooks(unit_stored=faults.unit_stored, environment_started=faults.environment_started)


class Builder:
    def __init__(
        self,
        recipe: Recipe,
        reporter: Reporter | None = None,
        retry_failed: bool = False,
        experts: BuiltExperts | None = None,
    ):
        self.recipe = recipe
        self.reporter = reporter or Reporter()
        self.retry_failed = retry_failed
        self.stages = compile_stages(recipe, experts)

    def context(self, cache: Cache) -> BuildContext:
        return BuildContext(self.recipe, cache, self.reporter, retry_failed=self.retry_failed, hooks=fault_hooks())

    def plan(self) -> list[StagePlan]:
        """Per stage: units in total and already cached. Computes nothing, starts no simulator.

        Later stages are planned from earlier stages' outputs as the cache holds them now."""
        with Cache.for_reading(self.recipe.cache_path, build_tables(self.stages)) as cache:
            ctx = self.context(cache)
            plans = []
            for stage in self.stages:
                plans.append(stage.plan(ctx))
                publish_output(ctx, stage)
            return plans

    def assemble(self, ctx: BuildContext) -> dict[str, list[dict]]:
        datasets = {}
        if "expert" in self.recipe.datasets:
            datasets["expert"] = expert_rows(self.recipe, ctx.get(ExpertTrajectories).load(ctx))
        if self.recipe.uses_engine:
            engine = engine_of(ctx)
            ctx.cache.replace_rows("deviations", deviation_rows(engine))
            datasets.update(engine_rows(engine))
        return datasets

    def build(self) -> BuildSummary:
        summary = BuildSummary()
        if self.recipe.output.cache:  # the cache lives elsewhere: mark the folder as a build of ours
            self.recipe.build_dir.mkdir(parents=True, exist_ok=True)
            mark(self.recipe.build_dir, "build")
        with Cache(self.recipe.cache_path, tables=build_tables(self.stages)) as cache:
            ctx = self.context(cache)
            try:
                cache.set_meta("recipe_fingerprint", self.recipe.fingerprint())
                cache.set_meta("env_version", ctx.env_version)
                cache.set_meta("machine", machine_description())  # float kernels, so rows, differ by CPU type
                for stage in self.stages:
                    summary.results.append(stage.run(ctx))
                    check_failure_rate(self.recipe, summary.results[-1])
                    publish_output(ctx, stage)
                for line in ctx.executor.notes():
                    self.reporter.info(line)
                datasets = self.assemble(ctx)
                summary.output = write_outputs(
                    self.recipe, datasets, ctx.env_version, cache.get_meta("output_fingerprint")
                )
                cache.set_meta("output_fingerprint", summary.output.fingerprint)
                write_manifest(self.recipe.build_dir, manifest_of(ctx, self.recipe.build_dir))
            except BuildFailed as exc:
                exc.summary = summary
                raise
            finally:
                ctx.close()
        return summary


@contextmanager
def open_build(recipe: Recipe, read_only: bool = True, reporter: Reporter | None = None) -> Iterator[BuildContext]:
    """A context over an existing build's cache with every stage's output published, running nothing:
    what reports, benchmarks, exports, evaluation and experiments read a build through."""
    stages = compile_stages(recipe)
    with Cache(recipe.cache_path, read_only=read_only, tables=build_tables(stages)) as cache:
        ctx = BuildContext(recipe, cache, reporter)
        try:
            for stage in stages:
                publish_output(ctx, stage)
            yield ctx
        finally:
            ctx.close()


def played_env(recipe: Recipe) -> EnvSpec:
    """The recipe's ``env`` section as its build plays it: pointed at the games the build generated, where
    it generated any (what evaluation, benchmarks and experiments play after a build)."""
    if not recipe.cache_path.is_file():
        return recipe.env
    with open_build(recipe) as ctx:
        return ctx.env
