"""The ``env`` section of a VirtualHome recipe: folds and block sizes checked up front, without the simulator."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap
from steca_data.envs.virtualhome.splits import FOLD_SIZES, FOLDS


class VirtualHomeSpec(EnvSpec):
    name: Literal["virtualhome"] = "virtualhome"
    game: Literal["all"] = Field("all", description="All kept scene-1 tasks ('all' is the only choice).")
    max_steps: int = Field(40, gt=0, le=1000, description="Step cap per episode (40, as in STeCa).")

    @model_validator(mode="after")
    def _check_folds(self) -> VirtualHomeSpec:
        """Folds are train / seen / unseen; blocks fit their fold and do not overlap; no game parameters."""
        if self.params:
            raise ValueError(f"params.{sorted(self.params)[0]}: VirtualHome takes no parameters")
        check_folds(self.splits, FOLDS)
        for split_name, split in self.splits.items():
            if split.params:
                raise ValueError(f"splits.{split_name}.params: VirtualHome takes no parameters")
            if split.start + split.count > FOLD_SIZES[split.fold]:
                raise ValueError(
                    f"splits.{split_name}: start + count = {split.start + split.count} exceeds the "
                    f"{FOLD_SIZES[split.fold]} tasks of fold {split.fold!r}"
                )
        check_no_overlap(self.splits)
        return self
