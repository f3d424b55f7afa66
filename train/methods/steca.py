"""STeCa's reinforced training: the reward-weighted likelihood over Dc ∪ De ∪ Ds, one epoch from the base agent.

    L(θ) = E_Dc[r_c · log π(e_c | e_{1:t-1})] + E_Ds[r_s · log π(e_{t:m} | e_{1:t-1})] + E_De[r_e · log π(ẽ | u)]

Each row's ``loss`` flags are the mask (Dc: never the deviated action) and its ``reward_weight`` the weight;
``reinforce.datasets`` / ``reinforce.weighted`` narrow the sets or switch the weights off (ablations).
"""

from __future__ import annotations

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import WeightedMethod, rows_of


class Steca(WeightedMethod):
    name = "steca"
    label = "STeCa"
    description = "reward-weighted likelihood over Dc ∪ De ∪ Ds (reinforce.datasets, reinforce.weighted)"

    def needs(self, recipe) -> tuple[str, ...]:
        return tuple(recipe.reinforce.datasets)

    def data(self, build: BuildDir, recipe) -> list[dict]:
        return rows_of(build, recipe.reinforce.datasets, weighted=recipe.reinforce.weighted)

    def settings(self, recipe) -> dict:
        r = recipe.reinforce
        return {**super().settings(recipe), "datasets": list(r.datasets), "weighted": r.weighted}
