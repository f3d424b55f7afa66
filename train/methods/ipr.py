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
from steca_train.methods.base import DPOMethod, MethodRun


class IPROptions(Section):
    rounds: int = Field(2, ge=1, le=20, description="Explore → pair → train iterations (IPR's script runs 6).")
    step_threshold: float = Field(0.01, ge=0, description="Smallest step-reward margin of a step pair.")
    traj_threshold: float = Field(0.01, ge=0, description="Smallest outcome margin of a trajectory pair.")


class IPR(DPOMethod):
    name = "ipr"
    label = "IPR"
    description = "iterated: step pairs (MC step rewards) + trajectory pairs, DPO + SFT mixture, new policy explores"
    Options = IPROptions

    def thresholds(self, options) -> dict[str, float]:
        own, trajectories = self.kinds  # its step pairs, then ETO's trajectory pairs (its data side's order)
        return {own: options.step_threshold, trajectories: options.traj_threshold}

    def check(self, recipe) -> str | None:
        if super().check(recipe):
            return super().check(recipe)
        if recipe.rollouts.scope != "all":
            return (
                f"rollouts.scope: ipr needs 'all' (got {recipe.rollouts.scope!r}): it compares the agent's step "
                "with the expert's at every position; --set rollouts.scope=all"
            )
        return None

    def rounds(self, options) -> int:
        return options.rounds

    def round_settings(self, run: MethodRun, k: int) -> dict:
        """Every round: DPO + NLL of the chosen side, the SFT base agent as the reference (IPR's script)."""
        return {"losses": ["sigmoid", "sft"], "ref": run.base}
