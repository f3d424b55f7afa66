"""The ``env`` section of an ALFWorld recipe: task types, folds and game tree (checked in ``plugin.prepare``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from steca_data.envs.alfworld.gamefiles import FOLDS
from steca_data.envs.alfworld.problem import TASK_TYPES
from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap

PARAMS = ("planner_gold",)


class AlfworldSpec(EnvSpec):
    name: Literal["alfworld"] = "alfworld"
    game: str = Field("all", description="'all' or a comma-separated list of ALFWorld task types.")
    data_dir: str | None = Field(
        None, description="Root of a game tree (generated or official), relative to the recipe; else $ALFWORLD_DATA."
    )

    @model_validator(mode="after")
    def _check_types_and_folds(self) -> AlfworldSpec:
        """Known task types and parameters; folds are the data folders; blocks of a fold don't overlap."""
        types = {t.strip() for t in self.game.split(",")} - {"all"}
        if types - set(TASK_TYPES):
            raise ValueError(
                f"game: unknown ALFWorld task type(s) {sorted(types - set(TASK_TYPES))} (use 'all' or a list)"
            )
        unknown = sorted(set(self.params) - set(PARAMS))
        if unknown:
            raise ValueError(f"params.{unknown[0]}: unknown parameter for alfworld (known: {', '.join(PARAMS)})")
        check_folds(self.splits, FOLDS)
        check_no_overlap(self.splits)
        return self
