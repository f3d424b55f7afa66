"""The import stage: expert trajectories from a ShareGPT/ETO file instead of the environment.

One unit per valid record; malformed records go to ``import_errors`` with their index and are skipped.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from rich.markup import escape

from steca_data.core.keys import unit_key
from steca_data.core.schemas import Trajectory
from steca_data.importers.sharegpt import read_sharegpt
from steca_data.stages.base import BuildContext, Emit, Stage, StageResult, Unit
from steca_data.stages.experts import ExpertTrajectories


@cache
def _read(path: Path, env: str, mtime: float):
    return read_sharegpt(path, env, "imported")


class ImportStage(Stage):
    name = "import"
    table = "trajectories"
    label, unit_name = "import", "records"

    def _records(self, ctx: BuildContext):
        path = ctx.recipe.resolve(ctx.recipe.experts.path)
        digest, good, bad = _read(path, ctx.recipe.env.name, path.stat().st_mtime)
        return path, digest, good, bad

    def note(self, ctx: BuildContext) -> str:
        bad = self._records(ctx)[3]
        return f"{len(bad)} malformed record(s) will be skipped" if bad else ""

    def prepare(self, ctx: BuildContext) -> None:
        path, _, good, bad = self._records(ctx)
        ctx.cache.put_import_errors(str(path), bad)
        for index, rid, error in bad:
            where = f"record {index} ({escape(str(rid))}) of {escape(path.name)}"
            ctx.reporter.info(f"[yellow]skipped {where}: {escape(error)}")
        ctx.cache.put_tasks([t.task for _, t in good])

    def units(self, ctx: BuildContext) -> list[Unit]:
        _, digest, good, _ = self._records(ctx)
        return [Unit(unit_key("import", "1", file=digest, index=i), t.task.task_id, t) for i, t in good]

    def run(self, ctx: BuildContext) -> StageResult:
        result = super().run(ctx)
        result.failed += len(self._records(ctx)[3])
        return result

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        for unit in todo:
            emit(unit, unit.item)

    def store(self, ctx: BuildContext, unit: Unit, result: Trajectory) -> bool:
        ctx.cache.put_trajectory(unit.key, result)
        return True

    def output(self, ctx: BuildContext) -> ExpertTrajectories:
        return ExpertTrajectories.present(ctx, self.units(ctx))
