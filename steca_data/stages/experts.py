"""Expert stages: gold paths from the environment, thoughts for them, or trajectories imported from files.

gold   one unit per train task: the environment's gold actions replayed, with observations and scores
expert one unit per gold path: the same steps with a thought per step (template or OpenAI-compatible LLM)
import one unit per valid record of a ShareGPT/ETO file
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed

from steca_data.cache.store import unit_key
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs import EnvError, SessionPool
from steca_data.importers.sharegpt import read_sharegpt
from steca_data.stages.base import BuildContext, Stage, StagePlan, StageResult
from steca_data.writers.thoughts import TEMPLATE_VERSION, OpenAIThoughtWriter, template_thoughts

GOLD_VERSION = "1"
EXPERT_VERSION = "1"


def gold_key(ctx: BuildContext, task: Task) -> str:
    return unit_key("gold", GOLD_VERSION, task_id=task.task_id, env_version=ctx.env_version)


def play_gold(backend, session, task: Task, env_version: str, max_steps: int = 1000) -> Trajectory:
    """Replay the gold path until the environment says done; fails unless the task is won."""
    actions = backend.gold_actions(session, task)
    instruction = session.instruction()
    first = session.reset(task)
    steps: list[Step] = []
    result = first
    for action in actions[:max_steps]:
        result = session.step(action)
        steps.append(
            Step(
                action=action, observation=result.observation, reward=result.score, done=result.done, valid=result.valid
            )
        )
        if result.done:
            break
    if not result.success:
        raise EnvError(f"gold path of {len(actions)} actions ended without success (score {result.score:.2f})")
    return Trajectory(
        trajectory_id=f"gold:{task.task_id}",
        source="expert",
        task=task,
        instruction=instruction,
        initial_observation=first.observation,
        steps=steps,
        outcome_reward=result.score,
        success=True,
        env_name=task.env,
        env_version=env_version,
    )


class GoldStage(Stage):
    name = "gold"

    def units(self, ctx: BuildContext) -> list[tuple[Task, str]]:
        return [(task, gold_key(ctx, task)) for task in ctx.tasks["train"]]

    def _done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        done = ctx.cache.existing("gold_paths", keys)
        if not ctx.retry_failed:
            done |= ctx.cache.existing("env_failures", keys)
        return done

    def plan(self, ctx: BuildContext) -> StagePlan:
        units = self.units(ctx)
        return StagePlan(self.name, len(units), len(self._done(ctx, [k for _, k in units])))

    def run(self, ctx: BuildContext) -> StageResult:
        units = self.units(ctx)
        ctx.cache.put_tasks([t for tasks in ctx.tasks.values() for t in tasks])
        done = self._done(ctx, [k for _, k in units])
        todo = [(t, k) for t, k in units if k not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if not todo:
            return result
        backend, version = ctx.backend, ctx.env_version

        def work(session, unit):
            return play_gold(backend, session, unit[0], version)

        with (
            ctx.reporter.track("gold paths", len(todo), "tasks") as advance,
            SessionPool(backend, ctx.recipe.env.workers) as pool,
        ):
            for (task, key), outcome in pool.imap_unordered(work, todo):
                if isinstance(outcome, BaseException):
                    ctx.cache.put_failure(self.name, key, task.task_id, f"{type(outcome).__name__}: {outcome}")
                    result.failed += 1
                else:
                    if ctx.retry_failed:
                        ctx.cache.clear_failure(key)
                    ctx.cache.put_gold(key, outcome)
                    result.computed += 1
                ctx.unit_done()
                advance()
        return result


class ExpertStage(Stage):
    """Adds a thought to every gold step. Keys depend on the thought settings, not on the environment
    run, so switching the thought model redoes no simulation."""

    name = "expert"

    def _thought_config(self, ctx: BuildContext) -> dict:
        spec = ctx.recipe.experts.thoughts
        if spec.backend == "template":
            return {"backend": "template", "version": TEMPLATE_VERSION}
        return {"backend": "openai", "model": spec.model, "base_url": spec.base_url, "temperature": spec.temperature}

    def units(self, ctx: BuildContext) -> list[tuple[str, str]]:
        """(gold key, expert key) for every gold path present in the cache."""
        config = self._thought_config(ctx)
        gold_keys = [gold_key(ctx, t) for t in ctx.tasks["train"]]
        present = ctx.cache.existing("gold_paths", gold_keys)
        return [(g, unit_key("expert", EXPERT_VERSION, gold=g, thoughts=config)) for g in gold_keys if g in present]

    def plan(self, ctx: BuildContext) -> StagePlan:
        config = self._thought_config(ctx)
        gold_keys = [gold_key(ctx, t) for t in ctx.tasks["train"]]
        keys = [unit_key("expert", EXPERT_VERSION, gold=g, thoughts=config) for g in gold_keys]
        failed = ctx.cache.existing("env_failures", gold_keys) if not ctx.retry_failed else set()
        cached = len(ctx.cache.existing("trajectories", keys))
        return StagePlan(self.name, len(keys) - len(failed), cached)

    def run(self, ctx: BuildContext) -> StageResult:
        units = self.units(ctx)
        done = ctx.cache.existing("trajectories", [k for _, k in units])
        todo = [(g, k) for g, k in units if k not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if not todo:
            return result
        golds = ctx.cache.get_gold([g for g, _ in todo])
        spec = ctx.recipe.experts.thoughts
        if spec.backend == "template":
            writer, source, workers = template_thoughts, TEMPLATE_VERSION, 1
        else:
            writer = OpenAIThoughtWriter(spec)
            source, workers = writer.source, spec.max_concurrency

        def work(unit):
            gold = golds[unit[0]]
            thoughts = writer(gold)
            steps = [s.model_copy(update={"thought": th}) for s, th in zip(gold.steps, thoughts, strict=True)]
            return gold.model_copy(
                update={
                    "steps": steps,
                    "thought_source": source,
                    "trajectory_id": f"expert:{gold.task.task_id}:{unit[1][:8]}",
                }
            )

        with (
            ctx.reporter.track("expert thoughts", len(todo), "trajectories") as advance,
            ThreadPoolExecutor(max_workers=workers) as pool,
        ):
            futures = {pool.submit(work, u): u for u in todo}
            for future in as_completed(futures):
                gkey, key = futures[future]
                exc = future.exception()
                if exc is not None:
                    ctx.cache.put_failure(self.name, key, golds[gkey].task.task_id, f"{type(exc).__name__}: {exc}")
                    result.failed += 1
                else:
                    ctx.cache.put_trajectory(key, future.result())
                    result.computed += 1
                ctx.unit_done()
                advance()
        return result


class ImportStage(Stage):
    """Expert trajectories from a ShareGPT/ETO file; bad records go to ``import_errors``."""

    name = "import"

    def _read(self, ctx: BuildContext):
        path = ctx.recipe.resolve(ctx.recipe.experts.path)
        digest, good, bad = read_sharegpt(path, ctx.recipe.env.name, "imported")
        keys = [(unit_key("import", "1", file=digest, index=i), traj) for i, traj in good]
        return path, keys, bad

    def units(self, ctx: BuildContext) -> list[str]:
        return [k for k, _ in self._read(ctx)[1]]

    def plan(self, ctx: BuildContext) -> StagePlan:
        path, keys, bad = self._read(ctx)
        note = f"{len(bad)} malformed record(s) will be skipped" if bad else ""
        return StagePlan(self.name, len(keys), len(ctx.cache.existing("trajectories", [k for k, _ in keys])), note)

    def run(self, ctx: BuildContext) -> StageResult:
        path, keys, bad = self._read(ctx)
        ctx.cache.put_import_errors(str(path), bad)
        for index, rid, error in bad:
            ctx.reporter.info(f"[yellow]skipped record {index} ({rid}) of {path.name}: {error}")
        done = ctx.cache.existing("trajectories", [k for k, _ in keys])
        result = StageResult(self.name, cached=len(done), failed=len(bad))
        ctx.cache.put_tasks([t.task for _, t in keys])
        for key, traj in keys:
            if key not in done:
                ctx.cache.put_trajectory(key, traj)
                result.computed += 1
                ctx.unit_done()
        return result
