"""STeCa without reinforced weights: the same rows as STeCa (``reinforce.datasets``), every weight 1."""

from __future__ import annotations

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import WeightedMethod, rows_of


class StecaSFT(WeightedMethod):
    name = "steca-sft"
    label = "STeCa w/o reinforced training"
    description = "STeCa's rows (Dc ∪ De ∪ Ds by default) as plain SFT, every weight 1"

    def needs(self, recipe) -> tuple[str, ...]:
        return tuple(recipe.reinforce.datasets)

    def data(self, build: BuildDir, recipe) -> list[dict]:
        return rows_of(build, recipe.reinforce.datasets, weighted=False)

    def settings(self, recipe) -> dict:
        return {**super().settings(recipe), "datasets": list(recipe.reinforce.datasets)}
