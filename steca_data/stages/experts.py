"""Expert stages: gold paths from the environment, then a thought for every gold step.

gold    one unit per train task: the environment's gold actions replayed, with observations and scores
expert  one unit per gold path: the same steps with a thought per step (template or OpenAI-compatible LLM)

Their output, ``ExpertTrajectories``, is what the engine walks along and what the expert dataset holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from steca_data.cache.store import Table
from steca_data.core.keys import unit_key
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs import EnvError
from steca_data.envs.base import as_step
from steca_data.stages.base import BuildContext, Emit, Stage, Unit
from steca_data.writers.thoughts import TEMPLATE_VERSION, OpenAIThoughtWriter, template_thoughts

GOLD_PATHS = Table(
    "gold_paths",
    """CREATE TABLE IF NOT EXISTS gold_paths (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, num_steps INTEGER, success BOOLEAN, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
    "Gold action sequences replayed in the environment (observations, scores), before thoughts.",
)


GOLD_VERSION = "1"
EXPERT_VERSION = "1"


@dataclass(frozen=True)
class ExpertTrajectories:
    """Keys (in the ``trajectories`` table) of the expert trajectories of this build, in train-task order."""

    keys: tuple[str, ...]

    @classmethod
    def present(cls, ctx: BuildContext, units: list[Unit]) -> ExpertTrajectories:
        """The units' keys that are stored, in unit order (what a build made so far)."""
        keys = [u.key for u in units]
        stored = ctx.cache.existing("trajectories", keys)
        return cls(tuple(k for k in keys if k in stored))

    def load(self, ctx: BuildContext) -> dict[str, Trajectory]:
        return ctx.cache.get_trajectories(list(self.keys))


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
        steps.append(as_step(action, result))
        if result.done:
            break
    if not result.success:
        raise EnvError(f"gold path of {len(actions)} actions ended without success (score {result.score:.2f})")
    return won_replay(f"gold:{task.task_id}", "expert", task, instruction, first, steps, result, env_version)


def won_replay(trajectory_id, source, task, instruction, first, steps, last, env_version, **extra) -> Trajectory:
    """The trajectory of a replay that won its task (gold paths and imported experts alike)."""
    return Trajectory(
        trajectory_id=trajectory_id,
        source=source,
        task=task,
        instruction=instruction,
        initial_observation=first.observation,
        steps=steps,
        outcome_reward=last.score,
        success=True,
        env_name=task.env,
        env_version=env_version,
        **extra,
    )


class GoldStage(Stage):
    name = "gold"
    table = "gold_paths"
    tables = (GOLD_PATHS,)
    label, unit_name = "gold paths", "tasks"

    def prepare(self, ctx: BuildContext) -> None:
        ctx.cache.put_tasks([t for tasks in ctx.tasks.values() for t in tasks])

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [Unit(gold_key(ctx, task), task.task_id, task) for task in ctx.tasks["train"]]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        version = ctx.env_version
        ctx.executor.map_sessions(lambda backend, s, u: play_gold(backend, s, u.item, version), todo, emit)

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        ctx.cache.put_gold(unit.key, result)
        return True


class ExpertStage(Stage):
    """Adds a thought to every gold step. Keys depend on the thought settings, not on the environment
    run, so switching the thought model redoes no simulation."""

    name = "expert"
    table = "trajectories"
    gives = (ExpertTrajectories,)
    label, unit_name = "expert thoughts", "trajectories"

    def _thought_config(self, ctx: BuildContext) -> dict:
        spec = ctx.recipe.experts.thoughts
        if spec.backend == "template":
            return {"backend": "template", "version": TEMPLATE_VERSION}
        return {"backend": "openai", "model": spec.model, "base_url": spec.base_url, "temperature": spec.temperature}

    def units(self, ctx: BuildContext) -> list[Unit]:
        """One unit per train task whose gold path did not fail (its gold path may not exist yet)."""
        config = self._thought_config(ctx)
        golds = [(gold_key(ctx, t), t.task_id) for t in ctx.tasks["train"]]
        failed = ctx.cache.existing("failures", [g for g, _ in golds])  # its gold path failed (or is retried)
        return [
            Unit(unit_key("expert", EXPERT_VERSION, gold=g, thoughts=config), task_id, g)
            for g, task_id in golds
            if g not in failed
        ]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        golds = ctx.cache.get_gold([u.item for u in todo])
        spec = ctx.recipe.experts.thoughts
        if spec.backend == "template":
            writer, source, workers = template_thoughts, TEMPLATE_VERSION, 1
        else:
            writer = OpenAIThoughtWriter(spec)
            source, workers = writer.source, spec.max_concurrency

        def work(unit: Unit) -> Trajectory:
            gold = golds.get(unit.item)
            if gold is None:
                raise EnvError("no gold path for this task (the gold stage failed on it)")
            thoughts = writer(gold)
            steps = [s.model_copy(update={"thought": th}) for s, th in zip(gold.steps, thoughts, strict=True)]
            trajectory_id = f"expert:{gold.task.task_id}:{unit.key[:8]}"
            return gold.model_copy(update={"steps": steps, "thought_source": source, "trajectory_id": trajectory_id})

        ctx.executor.map_calls(work, todo, workers, emit)

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        ctx.cache.put_trajectory(unit.key, result)
        return True

    def output(self, ctx: BuildContext) -> ExpertTrajectories:
        return ExpertTrajectories.present(ctx, self.units(ctx))
