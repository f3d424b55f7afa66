"""The games stage: data the environment generates for itself when the recipe names none.

Some environments need files before a task can be listed (e.g. a game tree) and can make them offline
(``EnvPlugin.generated_data``). Then the build's first stage makes them: one unit, the whole generated folder,
keyed by the generator's settings and the environment's version (same settings, same bytes), written to
``<build dir>/games/<key>.tmp`` and renamed when complete (a killed generation leaves nothing that looks done),
and recorded in the ``artifacts`` table. Its output is the recipe's ``env`` section resolved to the folder
(a copy; the recipe is never changed), which the build plays from then on, so every later stage lists tasks
and plays games from it; until it exists, the environment lists no tasks (``plan`` computes nothing).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from steca_data.core.keys import unit_key
from steca_data.envs.plugin import GeneratedData
from steca_data.envs.registry import plugin
from steca_data.envs.spec import EnvSpec
from steca_data.stages.base import BuildContext, Emit, EnvResolution, Stage, Unit

GAMES_VERSION = "1"


@dataclass(frozen=True)
class GeneratedGames(EnvResolution):
    """The folder the environment's generated data lives in (published once it exists), and the ``env``
    section that reads from it."""

    path: Path
    record: dict
    env: EnvSpec


def generated_data(ctx: BuildContext) -> GeneratedData | None:
    return plugin(ctx.recipe.env.name).generated_data(ctx.recipe.env)


def games_key(ctx: BuildContext, data: GeneratedData) -> str:
    return unit_key("games", GAMES_VERSION, env=ctx.recipe.env.name, env_version=ctx.env_version, **data.settings)


def games_record(ctx: BuildContext, key: str) -> dict | None:
    """The artifact record of a generated folder that still exists (read to the end: the connection stays
    free for the next statement)."""
    record = ctx.cache.get_artifact(key)
    return record if record is not None and Path(record["path"]).is_dir() else None


class GamesStage(Stage):
    name = "games"
    table = "artifacts"
    label, unit_name = "generate games", "game sets"
    gives = (GeneratedGames,)
    records_failures = False  # without its games the build cannot list a task: stop with the cause

    def units(self, ctx: BuildContext) -> list[Unit]:
        data = generated_data(ctx)
        return [] if data is None else [Unit(games_key(ctx, data), "", data)]

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        return {k for k in keys if games_record(ctx, k) is not None}

    def note(self, ctx: BuildContext) -> str:
        data = generated_data(ctx)
        return "" if data is None else data.description

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        workers = max(1, min(ctx.recipe.env.workers, os.cpu_count() or 1))
        for unit in todo:
            final = ctx.recipe.build_dir / "games" / unit.key[:12]
            if not (final / "manifest.json").is_file():  # a finished folder is renamed into place, never edited
                work = final.with_name(final.name + ".tmp")
                shutil.rmtree(work, ignore_errors=True)
                ctx.reporter.info(f"games: generating {unit.item.description} into {final}")
                summary = unit.item.write(work, workers)
                shutil.rmtree(final, ignore_errors=True)
                work.rename(final)
            else:
                summary = {"reused": True}
            emit(unit, {"path": str(final.resolve()), "settings": unit.item.settings, **summary})

    def store(self, ctx: BuildContext, unit: Unit, result: dict) -> bool:
        ctx.cache.put_artifact(unit.key, "games", result["path"], result)
        return True

    def output(self, ctx: BuildContext) -> GeneratedGames | None:
        data = generated_data(ctx)
        record = None if data is None else games_record(ctx, games_key(ctx, data))
        if record is None:
            return None
        path = Path(record["path"])
        return GeneratedGames(path, record, data.use(path))
