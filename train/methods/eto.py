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
from steca_data.policies.ids import policy_id
from steca_train.methods.base import DPOMethod, MethodRun
from steca_train.methods.rounds import explore, round_model


class ETOOptions(Section):
    rounds: int = Field(2, ge=1, le=20, description="Explore → pair → DPO iterations (ETO's script runs 3).")
    later_beta: float = Field(0.5, gt=0, description="β of rounds after the first (ETO: 0.5).")
    later_lr_ratio: float = Field(0.5, gt=0, le=1, description="lr of later rounds / dpo.lr (ETO: 5e-7 / 1e-6).")


class ETO(DPOMethod):
    name = "eto"
    label = "ETO"
    description = "iterated: explore from the start state, (expert, failed exploration) pairs, DPO"
    kinds = ("eto",)
    Options = ETOOptions

    def train(self, run: MethodRun) -> dict:
        opts, model, build, done = run.options, run.init, run.build, []
        for k in range(1, opts.rounds + 1):
            if k > 1:
                build = explore(run, model, k)
            explorer = build.base_agent()[0]
            out = round_model(run, k, opts.rounds)
            later = {} if k == 1 else {"beta": opts.later_beta, "lr": run.recipe.reinforce.dpo.lr * opts.later_lr_ratio}
            info = self.dpo_round(run, self.data(build, run.recipe), model, out, **later)
            done.append({"round": k, "explored_by": explorer, "model": policy_id(run.recipe.policy, str(out)), **info})
            model = out
        last = done[-1]
        return {**{k: last[k] for k in ("steps", "final_loss")}, "pairs": sum(d["pairs"] for d in done),
                "train_seconds": round(sum(d["train_seconds"] for d in done), 1), "rounds": done}  # fmt: skip
