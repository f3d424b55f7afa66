"""STeP: self-reflected trajectories trained with partial masking, mixed with the expert trajectories.

A self-reflected trajectory (``export --format step``): the history, the agent's erroneous step *without* loss,
the reflection and the corrected step *with* loss, then the expert continuation. The reflection is the
recipe's reflector's (the teacher), the erroneous step the base agent's first deviated proposal. Rows keep
their per-turn ``loss`` flags (the partial mask); STeP weighs every row alike (weight 1).
"""

from __future__ import annotations

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import WeightedMethod, rows_of


class STeP(WeightedMethod):
    name = "step"
    label = "STeP"
    description = "self-reflected trajectories (error step masked, reflection + correction learnt) ∪ experts"

    def needs(self, recipe) -> tuple[str, ...]:
        return ("expert", "dc")

    def data(self, build: BuildDir, recipe) -> list[dict]:
        """The experts, then the self-reflected trajectories exactly as ``export --format step`` writes them."""
        return [*rows_of(build, ("expert",), weighted=False), *self.data_side.rows(build)]

    def examples_rows(self, rows: list[dict]) -> list[dict]:
        """Role, content and the loss flag of each message (the segment names are for readers); weight 1."""
        keep = ("role", "content", "loss")
        return [{**row, "reward_weight": 1.0, "dataset": row.get("dataset", "step"),
                 "messages": [{k: m[k] for k in keep} for m in row["messages"]]} for row in rows]  # fmt: skip
