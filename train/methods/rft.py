"""RFT (rejection-sampling fine-tuning): the expert trajectories plus the agent's own successes, plain SFT."""

from __future__ import annotations

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import WeightedMethod, rows_of


class RFT(WeightedMethod):
    name = "rft"
    label = "RFT"
    description = "expert trajectories ∪ the agent's explored successes (De), weights 1, from the base agent"

    def needs(self, recipe) -> tuple[str, ...]:
        return ("expert", "de")

    def data(self, build: BuildDir, recipe) -> list[dict]:
        return rows_of(build, ("expert", "de"), weighted=False)
