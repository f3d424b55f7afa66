"""Recipe sections for the agent side: the tiny model to create, the policy backend, SFT and evaluation.

They live apart from ``recipe`` so the data-building sections stay readable; ``Recipe`` only declares the
fields. None of them shapes the expert data, so they are left out of the recipe's data fingerprint.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from steca_data.core.section import Section

_Section = Section  # unknown fields rejected, booleans are not numbers


class ModelSpec(_Section):
    """A small Llama-style model built from scratch (``steca-train init-model``), or an existing checkpoint."""

    path: str | None = Field(None, description="Existing local HF causal-LM directory; skips init-model when set.")
    out: str | None = Field(None, description="Where init-model writes; default <build dir>/models/init.")
    vocab_size: int = Field(1024, ge=300, le=262144, description="Target size of the byte-level BPE vocabulary.")
    hidden_size: int = Field(128, ge=16, le=16384)
    num_layers: int = Field(4, ge=1, le=128)
    num_heads: int = Field(4, ge=1, le=256)
    num_kv_heads: int | None = Field(None, ge=1, le=256, description="Grouped-query heads; default num_heads.")
    intermediate_size: int = Field(352, ge=16, le=65536)
    max_positions: int = Field(1024, ge=64, le=131072)
    tie_embeddings: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelSpec:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads: must divide hidden_size {self.hidden_size} (got {self.num_heads})")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_kv_heads: must divide num_heads {self.num_heads} (got {kv})")
        return self


class PolicySpec(_Section):
    """Which backend plays the agent (evaluation, rollouts, explorations) and how it decodes."""

    backend: Literal["transformers", "openai", "vllm", "random", "eps_expert"] = "transformers"
    model: str | None = Field(None, description="Local model dir (transformers/vllm) or served model name (openai).")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="Sampling temperature for Monte Carlo rollouts.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    constrained: bool = Field(True, description="Restrict the Action span to the admissible actions.")
    max_new_tokens: int = Field(64, ge=1, le=8192)
    batch_size: int = Field(64, ge=1, le=4096, description="Prompts per generate call (episodes in lock-step).")
    prefix_cache: bool = Field(True, description="Reuse the KV cache of a prompt prefix shared by the batch.")
    max_concurrency: int = Field(8, ge=1, le=512, description="Parallel HTTP requests (openai backend).")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    threads: int | None = Field(None, ge=1, le=256, description="torch CPU threads; default leave as is.")
    epsilon: float | None = Field(
        None, ge=0.0, le=1.0, description="eps_expert: chance of a uniformly random admissible action per step."
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict[str, Any]:
        """``epsilon`` stays out of the dump when unset: recipes of other backends keep their fingerprint."""
        data = handler(self)
        return {k: v for k, v in data.items() if k != "epsilon" or v is not None}

    @model_validator(mode="after")
    def _needs_endpoint(self) -> PolicySpec:
        if self.backend == "eps_expert" and self.epsilon is None:
            raise ValueError("epsilon: required when backend is 'eps_expert' (e.g. 0.2)")
        if self.backend != "eps_expert" and self.epsilon is not None:
            raise ValueError(f"epsilon: only read by backend 'eps_expert' (backend is {self.backend!r})")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("base_url: required when backend is 'openai'")
        if self.backend == "openai" and not self.model:
            raise ValueError("model: required when backend is 'openai' (the served model name)")
        return self


class LoRASpec(_Section):
    r: int = Field(16, ge=1, le=1024)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class SFTSpec(_Section):
    """Supervised fine-tuning: weighted NLL on assistant turns (the same loop runs STeCa's objective)."""

    datasets: list[str] = Field(default_factory=lambda: ["expert"], description="DatasetDict keys to train on.")
    data: str | None = Field(None, description="Dataset dir (save_to_disk); default <build dir>/dataset.")
    init: str | None = Field(None, description="Model to start from; default model.path or model.out.")
    out: str | None = Field(None, description="Output dir; default <build dir>/models/sft.")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps; overrides epochs.")
    time_budget_s: float | None = Field(
        None,
        gt=0,
        description="Guard on training time: `steca-train sft` stops (and saves) past it; a build's warm-up fails "
        "instead, since its cached model must not depend on the machine's speed. The schedule never depends on it.",
    )
    lr: float = Field(3e-3, gt=0, lt=1)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    batch_tokens: int = Field(4096, ge=64, description="Padded tokens per micro-batch.")
    grad_accum: int = Field(1, ge=1, le=1024)
    max_seq_len: int = Field(768, ge=32)
    lora: LoRASpec | None = Field(None, description="Train a LoRA adapter instead of the full model.")
    threads: int | None = Field(None, ge=1, le=256)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: Literal["auto", "on", "off"] = Field("auto", description="auto: bf16 autocast only on CUDA with bf16.")
    seed: int = 0
    log_every: int = Field(10, ge=1)
    save_every: int = Field(200, ge=1, description="Checkpoint (for --resume) every N optimizer steps.")
    activation_checkpointing: bool = Field(
        False, description="Recompute layer activations in the backward pass: less memory, ~30 % more compute."
    )
    parallel: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="Under torchrun: ddp (replicated weights) or fsdp (FSDP2 fully_shard); auto: fsdp for full "
        "fine-tuning of models over 1B parameters, else ddp. The gradient is the same either way.",
    )


class EvalSpec(_Section):
    """Evaluation: greedy (as in the paper) and optionally k samples per task at a temperature."""

    splits: list[str] = Field(default_factory=lambda: ["seen", "unseen"])
    max_steps: int | None = Field(None, gt=0, le=1000, description="Step cap; default env.max_steps.")
    limit: int | None = Field(None, gt=0, description="Evaluate only the first N tasks of each split.")
    greedy: bool = True
    samples: int = Field(0, ge=0, le=1000, description="Sampled episodes per task (0: greedy only).")
    temperature: float = Field(1.0, gt=0.0, le=2.0)
    seed: int = 0
