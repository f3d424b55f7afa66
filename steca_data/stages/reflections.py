"""The reflection stage: a reflective thought for each task's first deviated proposal (delta from the recipe)."""

from __future__ import annotations

from steca_data.cache.store import Table
from steca_data.stages.agent import AgentHandle
from steca_data.stages.base import BuildContext, Emit, Stage, Unit
from steca_data.stages.walks import DEVIATIONS, ENGINE_MAY_READ, ENGINE_NEEDS, FirstDeviation, engine_of
from steca_data.writers.reflection import ReflectionOutcome, ReflectionRequest

REFLECTIONS = Table(
    "reflections",
    """CREATE TABLE IF NOT EXISTS reflections (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, backend VARCHAR, model VARCHAR,
            prompt VARCHAR, raw_response VARCHAR, thought VARCHAR, status VARCHAR, attempts INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
    "Reflective thoughts for first deviations, with prompt and raw response; status ok or failed.",
)

CALIBRATIONS = Table(
    "calibrations",
    """CREATE OR REPLACE VIEW calibrations AS
           SELECT d.*, r.thought AS reflection, r.status AS reflection_status, r.backend AS reflection_backend
           FROM deviations d LEFT JOIN reflections r ON r.key = d.reflection_key
                OR (d.reflection_key IS NULL AND r.task_id = d.task_id AND r.step = d.step)
           WHERE d.first""",
    "First deviations with the reflection the last build's recipe asks for (a cache holds every reflector's "
    "that was ever asked for): what Dc is built from.",
    view=True,
)


def make_reflector(ctx: BuildContext):
    from steca_data.writers.reflection import OpenAIReflector, PolicyReflector, TemplateReflector

    spec = ctx.recipe.reflection
    if spec.backend == "template":
        return TemplateReflector(spec.template)
    if spec.backend == "openai":
        return OpenAIReflector(spec)
    return PolicyReflector(
        ctx.get(AgentHandle).policy, spec.max_retries, spec.temperature, seed=ctx.recipe.rollouts.seed
    )


def reflection_request(first: FirstDeviation) -> ReflectionRequest:
    w, t, p = first.walk, first.step, first.proposal
    return ReflectionRequest(
        game=w.task.game,
        env=w.task.env,
        instruction=w.expert.instruction,
        initial_observation=w.expert.initial_observation,
        history=list(w.expert.steps[: t - 1]),
        deviated_thought=p["thought"],
        deviated_action=p["action"],
        deviated_observation=p["observation"],
        expert_action=w.actions[t - 1],
    )


class ReflectionStage(Stage):
    name = "reflections"
    table = "reflections"
    needs, may_read = ENGINE_NEEDS, ENGINE_MAY_READ
    tables = (REFLECTIONS, DEVIATIONS, CALIBRATIONS)

    def waiting_for(self, ctx: BuildContext) -> str | None:
        return "after the warm-up" if ctx.find(AgentHandle) is None else None

    def note(self, ctx: BuildContext) -> str:
        return "" if self.units(ctx) else "known once rollouts exist"

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [Unit(f.reflection_key, f.walk.task.task_id, f) for f in engine_of(ctx).first_deviations()]

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        reflector = make_reflector(ctx)
        self._reflector = reflector
        batch = max(1, ctx.recipe.reflection.max_concurrency)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            outcomes = reflector.reflect([reflection_request(u.item) for u in chunk])
            for unit, outcome in zip(chunk, outcomes, strict=True):
                emit(unit, outcome)

    def store(self, ctx: BuildContext, unit: Unit, result: ReflectionOutcome) -> bool:
        row = {
            "key": unit.key,
            "task_id": unit.task_id,
            "step": unit.item.step,
            "backend": self._reflector.name,
            "model": self._reflector.model,
            "prompt": result.prompt,
            "raw_response": result.raw_response,
            "thought": result.thought,
            "status": result.status,
            "attempts": result.attempts,
        }
        ctx.cache.put_rows("reflections", [row])
        return result.status == "ok"
