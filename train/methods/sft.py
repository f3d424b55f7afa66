"""SFT: the base agent itself — the warm-up SFT on expert trajectories that every other method starts from."""

from __future__ import annotations

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import Method, MethodRun, rows_of


class SFT(Method):
    name = "sft"
    label = "SFT (base agent)"
    description = "the base agent: warm-up SFT on the expert trajectories (trained by the build, not again)"
    trainer = "none"
    trains = False

    def needs(self, recipe) -> tuple[str, ...]:
        return ("expert",)

    def data(self, build: BuildDir, recipe) -> list[dict]:

        return rows_of(build, ("expert",), weighted=False)

    def train(self, run: MethodRun) -> dict:
        raise RuntimeError("sft is the base agent: nothing to train")
