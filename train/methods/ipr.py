"""IPR (Xiong et al. 2024, WeiminXiong/IPR): iterative step-level process refinement.

Each round the current agent proposes its own step along every expert trajectory; Monte Carlo step rewards
(the rollouts the engine makes under ``rollouts.scope: all``) compare it with the expert's step. Pairs:
step-level (expert step vs the agent's, the higher step reward chosen, margin ≥ ``step_threshold``) and
trajectory-level (expert vs an exploration with a lower outcome, margin ≥ ``traj_threshold``). The mixture
objective is outcome DPO + step DPO + SFT on the chosen side: TRL's DPO with ``loss_type: [sigmoid, sft]``
over both kinds of pairs, as IPR's ``dpo_with_sft_loss`` (−log σ(β·logits) − log π(chosen)). The policy starts
from the last round's model, the reference stays the SFT base agent, and the next round explores with the new
policy (its proposals and rollouts land in the same cache under its own policy id).

From IPR's ``run_pipeline.sh``: 6 iterations, β 0.1, lr 3e-6, 3 epochs, thresholds 0.01, 5 MC samples. Here the
round count defaults to 2 (CPU budget; ``reinforce.methods.ipr.rounds``), β / lr / epochs are ``reinforce.dpo``'s.
"""

from __future__ import annotations

from pydantic import Field

from steca_data.core.section import Section
from steca_data.policies.ids import policy_id
from steca_train.methods.base import DPOMethod, MethodRun
from steca_train.methods.rounds import explore, round_model


class IPROptions(Section):
    rounds: int = Field(2, ge=1, le=20, description="Explore → pair → train iterations (IPR's script runs 6).")
    step_threshold: float = Field(0.01, ge=0, description="Smallest step-reward margin of a step pair.")
    traj_threshold: float = Field(0.01, ge=0, description="Smallest outcome margin of a trajectory pair.")


class IPR(DPOMethod):
    name = "ipr"
    label = "IPR"
    description = "iterated: step pairs (MC step rewards) + trajectory pairs, DPO + SFT mixture, new policy explores"
    kinds = ("ipr", "eto")
    Options = IPROptions

    def thresholds(self, options) -> dict[str, float]:
        return {"ipr": options.step_threshold, "eto": options.traj_threshold}

    def check(self, recipe) -> str | None:
        if recipe.rollouts.scope != "all":
            return (
                f"rollouts.scope: ipr needs 'all' (got {recipe.rollouts.scope!r}): it compares the agent's step "
                "with the expert's at every position; --set rollouts.scope=all"
            )
        return None

    def train(self, run: MethodRun) -> dict:
        rounds, model, build = run.options.rounds, run.init, run.build
        done = []
        for k in range(1, rounds + 1):
            if k > 1:
                build = explore(run, model, k)
            explorer = build.base_agent()[0]
            out = round_model(run, k, rounds)
            info = self.dpo_round(run, self._pairs(build, run), model, out, losses=["sigmoid", "sft"], ref=run.base)
            done.append({"round": k, "explored_by": explorer, "model": policy_id(run.recipe.policy, str(out)), **info})
            model = out
        last = done[-1]
        return {**{k: last[k] for k in ("steps", "final_loss")}, "pairs": sum(d["pairs"] for d in done),
                "train_seconds": round(sum(d["train_seconds"] for d in done), 1), "rounds": done}  # fmt: skip

    def _pairs(self, build, run: MethodRun) -> list[dict]:
        return self.data(build, run.recipe)
