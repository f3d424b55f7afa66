"""The base agent stage: resolve the policy the engine explores with, training it first if asked.

The recipe names the base agent in ``policy``: a local checkpoint (``policy.model``), an OpenAI-compatible
endpoint, the random floor, or, for ``transformers``/``vllm`` without a model, a *warm-up*: init-model and
SFT on the recipe's own expert rows (paper: warm-up SFT on expert trajectories). The warm-up is one cached
unit: its key hashes the expert rows and the model/SFT/prompt settings; its row in the ``artifacts`` table
names the model directory and the policy id, so a rebuild neither retrains nor even loads the model.

Output: an ``AgentHandle`` (policy id now, policy loaded on first use).
"""

from __future__ import annotations

from collections.abc import Callable

from steca_data.core.keys import unit_key
from steca_data.policies.ids import policy_id
from steca_data.stages.base import BuildContext, Emit, Stage, Unit
from steca_data.stages.experts import ExpertTrajectories
from steca_data.training.quiet import quiet_transformers

WARMUP_VERSION = "1"


class AgentHandle:
    """The policy id is known cheaply (cache keys need it); the policy is loaded on first use."""

    def __init__(self, policy_id: str, model: str | None, load: Callable[[], object], spec=None):
        self.policy_id = policy_id
        self.model = model
        self.spec = spec  # the recipe's policy section: how another process (a Ray worker) loads the same policy
        self._load = load
        self._policy = None

    @property
    def policy(self):
        if self._policy is None:
            self._policy = self._load()
            loaded = getattr(self._policy, "policy_id", self.policy_id)
            if loaded != self.policy_id:
                raise RuntimeError(f"policy id changed on load: {self.policy_id} != {loaded}")
        return self._policy


def agent_handle(spec, model: str | None) -> AgentHandle:
    """The handle for the policy ``spec`` names with ``model`` (a path or served name) as its weights."""

    def load():
        from steca_data.policies.factory import make_policy

        quiet_transformers()
        return make_policy(spec, model)

    return AgentHandle(policy_id(spec, model), model or spec.model, load, spec)


def needs_warmup(recipe) -> bool:
    return recipe.policy.backend in ("transformers", "vllm") and not recipe.policy.model


class BaseAgentStage(Stage):
    name = "base_agent"
    table = "artifacts"
    needs = (ExpertTrajectories,)
    gives = (AgentHandle,)
    label, unit_name = "warm-up", "models"
    records_failures = False  # a failed warm-up stops the build: nothing after it can run

    def _expert_keys(self, ctx: BuildContext) -> list[str]:
        return sorted(ctx.get(ExpertTrajectories).keys)

    def warmup_key(self, ctx: BuildContext) -> str:
        r = ctx.recipe
        settings = {
            "model": r.model.model_dump(mode="json", exclude={"out", "path"}),
            "sft": r.sft.model_dump(
                mode="json",
                exclude={
                    "out",
                    "init",
                    "data",
                    "time_budget_s",
                    "save_every",
                    "log_every",
                    "threads",
                    "device",
                    "activation_checkpointing",
                    "parallel",
                },  # how it runs, not what it learns: caches stay valid
            ),
            "prompt": r.prompt.model_dump(mode="json"),
        }
        return unit_key("warmup", WARMUP_VERSION, experts=self._expert_keys(ctx), **settings)

    def units(self, ctx: BuildContext) -> list[Unit]:
        return [Unit(self.warmup_key(ctx), "", None)] if needs_warmup(ctx.recipe) else []

    def waiting_for(self, ctx: BuildContext) -> str | None:
        if needs_warmup(ctx.recipe) and not ctx.get(ExpertTrajectories).keys:
            return "after the expert stage"
        return None

    def note(self, ctx: BuildContext) -> str:
        spec = ctx.recipe.policy
        return "init-model + warm-up SFT" if needs_warmup(ctx.recipe) else f"uses {spec.backend} {spec.model or ''}"

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        return {k for k in keys if ctx.cache.get_artifact(k) is not None}

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        from steca_data.stages.warmup import warm_up

        for unit in todo:
            final = ctx.recipe.build_dir / "models" / f"warmup-{unit.key[:12]}"
            emit(unit, warm_up(ctx, final))

    def store(self, ctx: BuildContext, unit: Unit, result: dict) -> bool:
        result["policy_id"] = policy_id(ctx.recipe.policy, result["path"])
        ctx.cache.put_artifact(unit.key, "warmup", result["path"], result)
        return True

    def output(self, ctx: BuildContext) -> AgentHandle | None:
        spec = ctx.recipe.policy
        if not needs_warmup(ctx.recipe):
            return agent_handle(spec, spec.model)
        if not ctx.get(ExpertTrajectories).keys:
            return None
        record = ctx.cache.get_artifact(self.warmup_key(ctx))
        return None if record is None else agent_handle(spec, record["path"])
