"""The ``env`` section of a TextWorldExpress recipe: games, parameter ranges and folds checked up front."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap
from steca_data.envs.textworld_express.catalog import FOLD_SIZES, validate_game_params

HEAP_MIN_MB, HEAP_MAX_MB = 32, 64 * 1024  # below 32m the simulator cannot start; above 64g no machine here


class TextWorldExpressSpec(EnvSpec):
    name: Literal["textworld_express"] = "textworld_express"
    game: str = Field("twc", description="twc, cookingworld or coin.")
    jvm_max_heap: str = Field("256m", description="Heap of the one shared JVM: 32m .. 64g.")

    @field_validator("jvm_max_heap")
    @classmethod
    def _heap_the_jvm_accepts(cls, value: str) -> str:
        """A heap the JVM starts with; checked here, since a refused -Xmx only shows as a broken gateway."""
        match = re.fullmatch(r"(\d{1,9})([mMgG])", value.strip())
        if not match:
            raise ValueError(f"must be a size like 256m or 2g: digits, then m or g (got {value!r})")
        megabytes = int(match[1]) * (1024 if match[2] in "gG" else 1)
        if not HEAP_MIN_MB <= megabytes <= HEAP_MAX_MB:
            raise ValueError(f"must be between 32m and 64g (got {value!r})")
        return value

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
