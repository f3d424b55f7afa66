"""Recipe sections for closing the loop: reinforced training, its DPO ablation, and the experiment runner.

``reinforce`` holds the training settings shared by STeCa and every baseline trained from the base agent
(one epoch, the same trainer as SFT), so methods differ only in their data and weights. ``experiment``
names the seeds, the methods and the calibration analysis. Neither shapes the built data, so both are left
out of the recipe's data fingerprint.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from steca_data.core.section import Section
from steca_data.recipe.agent import SFTSpec

# the methods themselves are plugins of ``steca-train`` (``steca_train.methods``): this package holds no list of
# them; ``experiment.methods`` and ``reinforce.methods`` name them and ``steca-train`` checks the names (exit 2)


_Section = Section  # unknown fields rejected, booleans are not numbers


class DPOSpec(_Section):
    """The preference methods' DPO settings (steca-dpo, IPR, ETO; TRL's DPOTrainer)."""

    beta: float = Field(0.1, gt=0, description="DPO temperature (TRL default).")
    lr: float = Field(5e-4, gt=0, lt=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps per DPO run; overrides epochs.")
    batch_size: int = Field(4, ge=1, le=512, description="Preference pairs per optimizer step.")
    max_turns: int = Field(4, ge=1, le=100, description="Assistant turns kept of each side (bounds the length).")
    max_length: int = Field(1024, ge=64, description="Tokens of prompt + completion (the prompt is cut first).")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"


class ReinforceSpec(SFTSpec):
    """STeCa's reward-weighted likelihood over Dc ∪ De ∪ Ds; also the settings every baseline trains with."""

    datasets: list[str] = Field(default_factory=lambda: ["dc", "de", "ds"], description="DatasetDict keys.")
    weighted: bool = Field(True, description="Weight rows by reward_weight (r_c, r_e, r_s); False: all 1.")
    epochs: float = Field(1.0, gt=0, description="Paper: one epoch of reinforced training.")
    lr: float = Field(1e-3, gt=0, lt=1)
    warmup_steps: int = Field(5, ge=0)
    dpo: DPOSpec = Field(default_factory=DPOSpec)
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-method settings over each method's defaults, e.g. {<method>: {rounds: 3}} for an "
        "iterated one (`steca-train methods` lists the methods; each validates its own settings).",
    )


class CalibrationSpec(_Section):
    """Papers' Figures 4-5: success from a history that holds a deviated action, and with it removed."""

    enabled: bool = True
    rule: Literal["monte_carlo", "first_difference"] = Field(
        "monte_carlo",
        description="Which base-agent proposal makes a case: the first one STeCa's Monte Carlo rule judges "
        "deviated (rollouts.n continuations each, deviation.delta), or the first that differs from the expert.",
    )
    splits: list[str] = Field(default_factory=lambda: ["unseen"])
    tasks: int | None = Field(None, gt=0, description="First N tasks of each split; default eval.limit.")


class ExperimentSpec(_Section):
    """warm-up → build → each method → eval, per seed (``seed_scope``: what a seed varies)."""

    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    methods: list[str] | None = Field(
        None, min_length=1, description="Names of `steca-train methods` to run; default every registered method."
    )
    out: str | None = Field(None, description="Results directory; default <build dir>/experiment.")
    results: str | None = Field(
        None, description="Directory of the headline <env.game>.json (means, paired CIs); default experiment.out."
    )
    seed_scope: Literal["methods", "all"] = Field(
        "methods",
        description="What a seed varies. methods: the methods' training and evaluation sampling, on one shared "
        "warm-up and build; all: also the warm-up and the build (each seed builds in <output.dir>/seed-<s>).",
    )
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)
