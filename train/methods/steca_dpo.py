"""STeCa with SFT+DPO (the paper's ablation): steca-sft, then DPO on calibrated vs deviated continuations.

The pairs are ``export --format trl-dpo``'s rows of the kind its data side declares
(``steca_data.export.methods.steca_dpo``): Dc's context (history and the deviated step),
the calibrated continuation chosen, the agent's own continuation after the deviated step rejected; a deviated
continuation that did as well as the expert is no pair (as STeCa's ``data_cali_alfworld.py``).
"""

from __future__ import annotations

from steca_train.methods.base import DPOMethod


class StecaDPO(DPOMethod):
    name = "steca-dpo"
    label = "STeCa with SFT+DPO"
    description = "steca-sft, then DPO on (calibrated, deviated) continuations of Dc (trl-dpo kind steca)"
    starts_from = "steca-sft"

    def needs(self, recipe) -> tuple[str, ...]:
        return ("dc",)
