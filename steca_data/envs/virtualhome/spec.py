"""The ``env`` section of a VirtualHome recipe: folds and block sizes checked up front, without the simulator."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap
from steca_data.envs.virtualhome.splits import FOLD_SIZES, FOLDS, STECA_FOLDS

# Fields added after the first release: left out of the dumped recipe at their default, so recipes that do
# not use them keep their fingerprint (and their caches).
_OPTIONAL_DEFAULTS: dict[str, Any] = {"success": "goal", "dataset_dir": None, "steca_dir": None}


class VirtualHomeSpec(EnvSpec):
    name: Literal["virtualhome"] = "virtualhome"
    game: Literal["all"] = Field("all", description="All kept scene-1 tasks ('all' is the only choice).")
    max_steps: int = Field(40, gt=0, le=1000, description="Step cap per episode (40, as in STeCa).")
    success: Literal["goal", "steca"] = Field(
        "goal",
        description="How STeCa's test folds (steca_seen / steca_unseen) judge success: 'steca' = the row's "
        "revised_graph (STeCa's rule), 'goal' = virtualhome-eval's goal, else the graph difference. Other folds "
        "always use 'goal'.",
    )
    dataset_dir: str | None = Field(
        None,
        description="VirtualHome programs dataset (the folder holding init_and_final_graphs/, or its parent) for "
        "STeCa's test folds; default: the scene-1 part that virtualhome-eval ships.",
    )
    steca_dir: str | None = Field(
        None,
        description="A folder with your own vh_seen_test.jsonl / vh_unseen_test.jsonl (.gz too); default: the "
        "copies shipped with steca-data.",
    )

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if k not in _OPTIONAL_DEFAULTS or v != _OPTIONAL_DEFAULTS[k]}

    @model_validator(mode="after")
    def _check_folds(self) -> VirtualHomeSpec:
        """Folds are train / seen / unseen / train_steca / steca_seen / steca_unseen; blocks fit their fold and
        do not overlap; no game parameters."""
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
        folds = {split.fold for split in self.splits.values()}
        if {"train", "train_steca"} <= folds:
            raise ValueError("splits: folds 'train' and 'train_steca' share tasks; use one of them")
        if self.success == "steca" and not any(s.fold in STECA_FOLDS for s in self.splits.values()):
            raise ValueError(
                f"success: 'steca' needs STeCa's test files, and no split uses fold {' or '.join(STECA_FOLDS)}"
            )
        return self
