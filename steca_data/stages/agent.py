"""The base agent stage: resolve the policy the engine explores with, training it first if asked.

The recipe names the base agent in ``policy``: a local checkpoint (``policy.model``), an OpenAI-compatible
endpoint, the random floor, or, for ``transformers``/``vllm`` without a model, a *warm-up*: init-model and
SFT on the recipe's own expert rows (paper: warm-up SFT on expert trajectories). The warm-up is one cached
unit: its key hashes the expert rows and the model/SFT/prompt settings, and its output directory holds a
marker with the resulting policy id, so a rebuild neither retrains nor even loads the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from steca_data.cache.store import unit_key
from steca_data.stages.base import BuildContext, Stage, StagePlan, StageResult

WARMUP_VERSION = "1"
MARKER = "steca_warmup.json"


class AgentHandle:
    """The policy id is known cheaply (cache keys need it); the policy is loaded on first use."""

    def __init__(self, policy_id: str, load: Callable[[], object]):
        self.policy_id = policy_id
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


def static_policy_id(spec, model: str | None) -> str:
    """The id ``make_policy(spec, model).policy_id`` will report, without loading any weights."""
    if spec.backend == "random":
        return "random"
    if spec.backend == "openai":
        return f"openai:{model or spec.model}@{spec.base_url}"  # as OpenAIPolicy reports it
    from steca_data.policies.transformers_policy import model_digest

    path = Path(model or spec.model)
    if not path.is_dir():
        raise FileNotFoundError(f"policy.model: no model directory at {path}")
    prefix = "hf" if spec.backend == "transformers" else "vllm"
    return f"{prefix}:{path.name}:{model_digest(path)}"


def quiet_transformers() -> None:
    """Our reporter shows progress; transformers' own bars (loading weights, writing shards) are noise."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _loader(spec, model: str | None) -> Callable[[], object]:
    def load():
        from steca_data.policies.factory import make_policy

        quiet_transformers()
        return make_policy(spec, model)

    return load


class BaseAgentStage(Stage):
    name = "base_agent"

    @staticmethod
    def needs_warmup_spec(recipe) -> bool:
        return recipe.policy.backend in ("transformers", "vllm") and not recipe.policy.model

    @classmethod
    def needs_warmup(cls, ctx: BuildContext) -> bool:
        return cls.needs_warmup_spec(ctx.recipe)

    def _expert_keys(self, ctx: BuildContext) -> list[str]:
        from steca_data.stages.experts import ExpertStage

        return sorted(k for _, k in ExpertStage().units(ctx))

    def warmup_key(self, ctx: BuildContext) -> str:
        r = ctx.recipe
        settings = {
            "model": r.model.model_dump(mode="json", exclude={"out", "path"}),
            "sft": r.sft.model_dump(
                mode="json",
                exclude={"out", "init", "data", "time_budget_s", "save_every", "log_every", "threads", "device"},
            ),
            "prompt": r.prompt.model_dump(mode="json"),
        }
        return unit_key("warmup", WARMUP_VERSION, experts=self._expert_keys(ctx), **settings)

    def warmup_dir(self, ctx: BuildContext) -> Path:
        return ctx.recipe.build_dir / "models" / f"warmup-{self.warmup_key(ctx)[:12]}"

    def _marker(self, ctx: BuildContext) -> dict | None:
        path = self.warmup_dir(ctx) / MARKER
        return json.loads(path.read_text()) if path.is_file() else None

    def plan(self, ctx: BuildContext) -> StagePlan:
        """Also resolves ``ctx.agent`` when that needs no computing, so later stages can plan by key."""
        spec = ctx.recipe.policy
        if not self.needs_warmup(ctx):
            ctx.agent = AgentHandle(static_policy_id(spec, spec.model), _loader(spec, spec.model))
            return StagePlan(self.name, 0, 0, f"uses {spec.backend} {spec.model or ''}".strip())
        marker = self._marker(ctx)
        if marker is not None:
            ctx.agent = AgentHandle(marker["policy_id"], _loader(spec, marker["model"]))
        note = "" if self._expert_keys(ctx) else "after the expert stage"
        return StagePlan(self.name, 1, int(marker is not None), note or "init-model + warm-up SFT")

    def run(self, ctx: BuildContext) -> StageResult:
        spec = ctx.recipe.policy
        if not self.needs_warmup(ctx):
            ctx.agent = AgentHandle(static_policy_id(spec, spec.model), _loader(spec, spec.model))
            return StageResult(self.name)
        marker = self._marker(ctx)
        result = StageResult(self.name, cached=int(marker is not None))
        if marker is None:
            marker = self._warmup(ctx)
            result.computed = 1
            ctx.unit_done()
        model = marker["model"]
        ctx.agent = AgentHandle(marker["policy_id"], _loader(spec, model))
        result.notes.append(f"base agent {model}")
        return result

    def _warmup(self, ctx: BuildContext) -> dict:
        """init-model + SFT on the expert rows; written to a temp dir and renamed when complete."""
        import shutil

        from datasets import DatasetDict
        from datasets.utils.logging import disable_progress_bar
        from transformers import AutoTokenizer

        from steca_data.build.assemble import expert_rows
        from steca_data.build.output import _to_dataset
        from steca_data.training.data import load_rows, rows_to_examples
        from steca_data.training.init_model import corpus_texts, init_model
        from steca_data.training.trainer import plan_steps, train

        r = ctx.recipe
        final = self.warmup_dir(ctx)
        work = final.with_name(final.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        keys = self._expert_keys(ctx)
        rows = expert_rows(r, ctx.cache.get_trajectories(keys))
        if not rows:
            raise RuntimeError("the warm-up needs expert trajectories, and the expert stage produced none")
        disable_progress_bar()
        quiet_transformers()
        DatasetDict({"expert": _to_dataset("expert", rows)}).save_to_disk(str(work / "data"))
        ctx.reporter.info(
            f"warm-up: init-model ({r.model.hidden_size}d x {r.model.num_layers} layers) on "
            f"{len(rows)} expert trajectories"
        )
        init_model(r.model, corpus_texts(work / "data", ["expert"]), work / "init")
        tokenizer = AutoTokenizer.from_pretrained(str(work / "init"))
        examples, _ = rows_to_examples(
            load_rows(work / "data", ["expert"]), tokenizer, r.prompt.history, r.sft.max_seq_len
        )
        sft_spec = r.sft.model_copy(update={"datasets": ["expert"]})
        with ctx.reporter.track("warm-up sft", plan_steps(sft_spec, examples), "steps") as advance:
            done = [0]

            def progress(step: int, total: int, loss: float) -> None:
                advance(step - done[0])
                done[0] = step

            trained = train(
                sft_spec,
                work / "init",
                examples,
                work / "sft",
                tokenizer,
                progress=progress,
                pad_id=tokenizer.pad_token_id,
            )
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        model = str(final / "sft")
        marker = {
            "key": self.warmup_key(ctx),
            "model": model,
            "policy_id": static_policy_id(r.policy, model),
            "steps": trained.steps,
            "final_loss": trained.final_loss,
            "seconds": trained.seconds,
        }
        (final / MARKER).write_text(json.dumps(marker, indent=1))
        return marker
