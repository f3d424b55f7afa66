"""The ``env`` section of a TextWorldExpress recipe: games, parameter ranges and folds checked up front."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap
from steca_data.envs.textworld_express.catalog import FOLD_SIZES, validate_game_params


class TextWorldExpressSpec(EnvSpec):
    name: Literal["textworld_express"] = "textworld_express"
    game: str = Field("twc", description="twc, cookingworld or coin.")
    jvm_max_heap: str = Field("256m", pattern=r"^\d+[mMgG]$", description="Heap of the one shared JVM.")

    @model_validator(mode="after")
    def _check_game_and_folds(self) -> TextWorldExpressSpec:
        """Known game and parameters (per split too), folds that hold the asked-for seeds, no overlaps."""
        problem = validate_game_params(self.game, self.params)
        if problem:
            raise ValueError(problem)
        check_folds(self.splits, sorted(FOLD_SIZES))
        for split_name, split in self.splits.items():
            if split.start + split.count > FOLD_SIZES[split.fold]:
                raise ValueError(
                    f"splits.{split_name}: start + count = {split.start + split.count} exceeds the "
                    f"{FOLD_SIZES[split.fold]} tasks of fold {split.fold!r}"
                )
            problem = validate_game_params(self.game, {**self.params, **(split.params or {})})
            if problem:
                raise ValueError(f"splits.{split_name}.{problem}")
        check_no_overlap(self.splits)
        return self
