"""Recipe sections for the STeCa data engine: rollouts, proposals, deviation, reflection, reward weights.

Each field names the stage that reads it; unit keys hash exactly those fields, so changing delta, eta or
the distance re-assembles datasets without recomputing a single rollout.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steca_data.core.section import Section

_Section = Section  # unknown fields rejected, booleans are not numbers


class AdaptiveSpec(_Section):
    """Adaptive Monte Carlo: roll out each deviation verdict's two prefixes one sample at a time, from n_min
    up to n_max, until the verdict is decided (``core.calibration.AdaptiveRule``). Keys and seeds are those
    of a fixed-N build, so its rollouts are a prefix of the fixed n_max build's and both share one cache."""

    n_min: int = Field(2, ge=1, le=256, description="Rollouts every scored prefix gets.")
    n_max: int = Field(5, ge=1, le=256, description="Cap per prefix: the fixed N the verdicts are meant to match.")
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="Stop once the fixed-n_max verdict agrees with this probability."
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveSpec:
        if self.n_min > self.n_max:
            raise ValueError(f"n_min ({self.n_min}) must not exceed n_max ({self.n_max})")
        return self


class RolloutSpec(_Section):
    """Monte Carlo step rewards: N continuations sampled from each scored prefix (read by: rollouts)."""

    n: int = Field(5, ge=1, le=256, description="Rollouts per scored prefix (paper: 5).")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="Sampling temperature of rollouts (paper: 1.0).")
    max_steps: int | None = Field(
        None, gt=0, le=1000, description="Episode cap, prefix included; default env.max_steps."
    )
    tasks: int | None = Field(None, gt=0, description="Explore only the first N train tasks (cost control).")
    explorations: int | None = Field(
        None, ge=1, le=256, description="Episodes from scratch per task for De/Ds; default n (they double as V(s0))."
    )
    scope: Literal["all", "first_deviation"] = Field(
        "all",
        description=(
            "all: roll out every expert prefix and every differing proposal (the step-reward curve, IPR's "
            "step pairs). first_deviation: only what each task's first deviation needs, in rounds "
            "(Dc, De and Ds come out the same, with fewer rollouts; a new delta may need new rollouts)."
        ),
    )
    adaptive: AdaptiveSpec | None = Field(
        None,
        description=(
            "Sample until each deviation verdict is decided (n_min..n_max per prefix) instead of n for every "
            "prefix; n is then unused. Expert prefixes no verdict reads get n_min (explorations at least)."
        ),
    )
    seed: int = 0

    @property
    def cap(self) -> int:
        """Rollouts a scored prefix can get at most: n, or adaptive.n_max."""
        return self.adaptive.n_max if self.adaptive else self.n

    @property
    def floor(self) -> int:
        """Rollouts every scored prefix gets: n, or adaptive.n_min."""
        return self.adaptive.n_min if self.adaptive else self.n


class ProposalSpec(_Section):
    """The base agent's own next action from each expert prefix (read by: proposals)."""

    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0: greedy, the agent's most likely action.")


class DeviationSpec(_Section):
    """A proposal is deviated when r(proposal) - r(previous expert step) < delta (read by: assembly only)."""

    delta: float = Field(0.0, ge=-1.0, le=1.0)


class LabelSpec(_Section):
    """Ground truth for the deviation rule (read by: labels). Shapes no dataset row, so it stays out of the
    recipe's data fingerprint."""

    planner: bool = Field(
        False,
        description=(
            "Label every proposal (and the expert's own action) with the environment planner's remaining plan "
            "length before and after it: progress, detour or dead end (table plan_labels; environments with "
            "a planner only)."
        ),
    )


class ChatModelSpec(_Section):
    """An OpenAI-compatible chat model (GPT-4o, or any server via base_url) and how to call it; shared by
    expert thoughts and reflections, which both go through ``openai_client``."""

    model: str = "gpt-4o"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_retries: int = Field(3, ge=0, le=20)
    timeout_s: float = Field(60.0, gt=0)
    max_concurrency: int = Field(8, ge=1, le=256)


class ReflectionSpec(ChatModelSpec):
    """Who writes the reflective thought for a deviated step (read by: reflections)."""

    FINGERPRINT_OMITS_DEFAULT = frozenset({"template"})

    backend: Literal["template", "openai", "self"] = "template"
    template: Literal["notice", "brief"] = Field(
        "notice",
        description="The template backend's text: 'notice' names the deviated action and says it did not help, "
        "then the expert action's thought; 'brief' is 'That did not help.' and the thought (less new text to learn).",
    )


class RewardSpec(_Section):
    """Reward weights from nDTW deviation distance (read by: assembly only)."""

    eta: float = Field(0.01, ge=0.0, le=10.0, description="Paper: 1 for VirtualHome, 0.01 for ALFWorld.")
    distance: Literal["exact", "edit", "embedding"] = "exact"
    embedding_model: str | None = Field(None, description="Local HF encoder dir for distance 'embedding'.")

    @model_validator(mode="after")
    def _embedding_needs_model(self) -> RewardSpec:
        if self.distance == "embedding" and not self.embedding_model:
            raise ValueError("embedding_model: required when distance is 'embedding'")
        return self
