"""ETO (Song et al. 2024, Yifan-Song793/ETO): exploration-based trajectory optimisation.

Each round the current agent explores every walked task from its start state; (expert success, failed
exploration) trajectory pairs (``export --format trl-dpo`` kind ``eto``) train it with DPO, the reference being
the model the round starts from; the next round explores with the new policy. From ETO's ``run_eto.sh``: 3
iterations, β 0.1 then 0.5, lr 1e-6 then 5e-7 (a fifth of the first round's here), 3 epochs. Here the round
count defaults to 2 (CPU budget; ``reinforce.methods.eto.rounds``) and round 1's β / lr are ``reinforce.dpo``'s.
"""

from __future__ import annotations

from pydantic import Field

from steca_data.core.section import Section
from steca_train.methods.base import DPOMethod, MethodRun


class ETOOptions(Section):
    rounds: int = Field(2, ge=1, le=20, description="Explore → pair → DPO iterations (ETO's script runs 3).")
    later_beta: float = Field(0.5, gt=0, description="β of rounds after the first (ETO: 0.5).")
    later_lr_ratio: float = Field(0.5, gt=0, le=1, description="lr of later rounds / dpo.lr (ETO: 5e-7 / 1e-6).")


class ETO(DPOMethod):
    name = "eto"
    label = "ETO"
    description = "iterated: explore from the start state, (expert, failed exploration) pairs, DPO"
    Options = ETOOptions

    def rounds(self, options) -> int:
        return options.rounds

    def round_settings(self, run: MethodRun, k: int) -> dict:
        """The reference is the model the round starts from (TRL's copy of it); later rounds: ETO's β and lr."""
        if k == 1:
            return {}
        opts = run.options
        return {"beta": opts.later_beta, "lr": run.recipe.reinforce.dpo.lr * opts.later_lr_ratio}
