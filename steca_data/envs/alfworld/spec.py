"""The ``env`` section of an ALFWorld recipe: task types, folds and game tree (checked in ``plugin.prepare``).

Where the games come from, first match wins: ``env.data_dir`` (a generated or official tree), else
``$ALFWORLD_DATA``, else the games the build generates itself (``env.generate``; the ``games`` stage writes
them under the build directory and plays ``with_generated``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, model_validator

from steca_data.envs.alfworld.gamefiles import FOLDS
from steca_data.envs.alfworld.problem import TASK_TYPES
from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap

PARAMS = ("planner_gold",)
# importing alfworld sets ALFWORLD_DATA to this when it is unset: then it names a tree only if one is there
ALFWORLD_DEFAULT_DATA = Path("~/.cache/alfworld").expanduser()
COUNT_FIELDS = {"train": "games", "valid_seen": "eval_games", "valid_unseen": "eval_games"}


class GenerateSpec(BaseModel):
    """``env.generate``: the games a build generates when no tree is named, as ``steca-data alfworld
    generate`` would with the same settings (same seed, same bytes)."""

    model_config = ConfigDict(extra="forbid")

    seed: StrictInt = Field(0, ge=0, description="Same seed, same games.")
    games: StrictInt | None = Field(None, ge=1, description="Train games (default: as many as the splits use).")
    eval_games: StrictInt | None = Field(
        None, ge=0, description="Games in valid_seen and in valid_unseen each (default: as many as the splits use)."
    )
    size: Literal["small", "full"] = Field("small", description="small: 7 receptacles a room; full: whole plan.")


class AlfworldSpec(EnvSpec):
    name: Literal["alfworld"] = "alfworld"
    game: str = Field("all", description="'all' or a comma-separated list of ALFWorld task types.")
    data_dir: str | None = Field(
        None, description="Root of a game tree (generated or official), relative to the recipe; else $ALFWORLD_DATA."
    )
    generate: GenerateSpec | None = Field(
        None,
        description="Games the build generates when neither env.data_dir nor $ALFWORLD_DATA names a tree "
        "(default: seed 0, small rooms, as many games as the splits use).",
    )
    _generated_root: str | None = PrivateAttr(None)

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

    # ------------------------------------------------------------------------------------- the game tree
    def named_tree(self) -> str | None:
        """The tree the recipe or the environment names (``env.data_dir``, else ``$ALFWORLD_DATA``).

        ``$ALFWORLD_DATA`` set to alfworld's own default (which importing alfworld sets when it is unset)
        names a tree only when that folder holds one (e.g. after ``alfworld-download``)."""
        if self.data_dir:
            return self.data_dir
        env = os.environ.get("ALFWORLD_DATA")
        if not env:
            return None
        path = Path(env).expanduser()
        if path == ALFWORLD_DEFAULT_DATA and not any((path / d).is_dir() for d in ("json_2.1.1", "train")):
            return None
        return env

    def game_root(self) -> Path | None:
        """Where the games are: the named tree, else the generated one once the build made it, else None."""
        named = self.named_tree()
        if named:
            return Path(named).expanduser()
        return Path(self._generated_root) if self._generated_root else None

    def with_generated(self, root: Path) -> AlfworldSpec:
        """This section reading its games from ``root``, which the build generated (a named tree still wins);
        a copy: the recipe's own section is never changed."""
        resolved = self.model_copy()
        resolved._generated_root = str(root)
        return resolved

    def task_types(self) -> tuple[str, ...]:
        """``env.game`` as the generator's list of task types, in the order written ('all': every type)."""
        types = [t.strip() for t in self.game.split(",") if t.strip() and t.strip() != "all"]
        return tuple(dict.fromkeys(types)) or TASK_TYPES

    def generation_counts(self) -> dict[str, int]:
        """Games to generate per fold: ``env.generate``'s counts, by default as many as the splits use."""
        settings = self.generate or GenerateSpec()
        need = dict.fromkeys(FOLDS, 0)
        for split in self.splits.values():
            need[split.fold] = max(need[split.fold], split.start + split.count)
        asked = {"games": settings.games, "eval_games": settings.eval_games}
        counts = {}
        for fold in FOLDS:
            field = COUNT_FIELDS[fold]
            counts[fold] = need[fold] if asked[field] is None else asked[field]
            if counts[fold] < need[fold]:
                raise ValueError(
                    f"generate.{field}: {counts[fold]} {fold} games, but the splits use {need[fold]} of that fold"
                )
        return counts
