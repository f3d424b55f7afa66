"""Where a recipe's models and data live: explicit recipe fields, else conventional places in the build dir.

Like ``output.dir``, these paths are relative to the working directory.
"""

from __future__ import annotations

from pathlib import Path


class RecipePaths:
    def __init__(self, recipe):
        self.recipe = recipe

    @property
    def dataset(self) -> Path:
        return Path(self.recipe.sft.data) if self.recipe.sft.data else self.recipe.build_dir / "dataset"

    sft_data = dataset

    @property
    def init_model(self) -> Path:
        return Path(self.recipe.model.out) if self.recipe.model.out else self.recipe.build_dir / "models" / "init"

    @property
    def sft_init(self) -> Path:
        r = self.recipe
        return Path(r.sft.init or r.model.path or self.init_model)

    @property
    def sft_out(self) -> Path:
        return Path(self.recipe.sft.out) if self.recipe.sft.out else self.recipe.build_dir / "models" / "sft"

    @property
    def eval_dir(self) -> Path:
        return self.recipe.build_dir / "eval"
