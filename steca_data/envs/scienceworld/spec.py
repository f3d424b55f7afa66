"""The ``env`` section of a ScienceWorld recipe: task selection, folds, simplifications and the JVM heap."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from steca_data.core.schemas import Task
from steca_data.envs.scienceworld.catalog import FOLDS, fold_tasks, selected_types, task_types
from steca_data.envs.spec import EnvSpec, check_folds

SIMPLIFICATIONS = ("teleportAction", "selfWateringFlowerPots", "openContainers", "openDoors", "noElectricalAction")


class ScienceWorldSpec(EnvSpec):
    name: Literal["scienceworld"] = "scienceworld"
    game: str = Field("eto", description="Task types: eto (ETO's 24), all (30), or names like 'boil,melt'.")
    simplifications: str = Field("easy", description="ScienceWorld simplifications: easy (ETO's) or a list.")
    jvm_max_heap: str = Field(
        "4g", description="Heap cap of the one shared JVM: ~11 MB a live episode (up to 256 live), more for gold paths."
    )
    max_steps: int = Field(100, gt=0, le=1000)
    step_limits: Literal["eto", "none"] = Field(
        "eto",
        description=(
            "eto: an agent's episode also stops at ETO's step limit for its task type (10-120; the catalog's "
            "own for the six types ETO leaves out), as ETO evaluates; none: env.max_steps / rollouts.max_steps "
            "only. Gold replays are never cut."
        ),
    )

    def step_limit(self, task: Task) -> int | None:
        return task_types()[task.game].step_limit if self.step_limits == "eto" else None

    @field_validator("jvm_max_heap")
    @classmethod
    def _heap(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,9})([mMgG])", value.strip())
        if not match or int(match[1]) * (1024 if match[2] in "gG" else 1) < 256:
            raise ValueError(f"must be a size of at least 256m, like 1g (got {value!r})")
        return value

    @field_validator("simplifications")
    @classmethod
    def _simplifications(cls, value: str) -> str:
        parts = [p for p in value.split(",") if p]
        bad = [p for p in parts if p not in (*SIMPLIFICATIONS, "easy")]
        if bad:
            raise ValueError(f"unknown simplification {bad[0]!r} (known: easy, {', '.join(SIMPLIFICATIONS)})")
        return ",".join(parts)

    @model_validator(mode="after")
    def _check_tasks(self) -> ScienceWorldSpec:
        """Known task types, known folds, blocks inside their folds, no held-out task that is trained on."""
        names = selected_types(self.game)
        if isinstance(names, str):
            raise ValueError(f"game: {names}")
        check_folds(self.splits, FOLDS)
        blocks = {}
        for split_name, split in self.splits.items():
            size = len(fold_tasks(self.game, split.fold))
            if split.start + split.count > size:
                raise ValueError(
                    f"splits.{split_name}: start + count = {split.start + split.count} exceeds the {size} "
                    f"tasks of fold {split.fold!r} for game {self.game!r}"
                )
            if split.params:
                raise ValueError(f"splits.{split_name}.params: ScienceWorld takes no game parameters")
            blocks[split_name] = set(fold_tasks(self.game, split.fold)[split.start : split.start + split.count])
        for split_name, block in blocks.items():
            if split_name != "train" and block & blocks["train"]:
                raise ValueError(
                    f"splits.{split_name}: shares {len(block & blocks['train'])} tasks with splits.train "
                    "(held-out tasks must not be trained on)"
                )
        if self.params:
            raise ValueError("params: ScienceWorld takes no game parameters (choose task types with game)")
        return self
