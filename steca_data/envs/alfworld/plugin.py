"""ALFWorld as an environment plugin: generated or official game trees on the real engine.

Only light modules load here; the engine (alfworld, textworld, Fast Downward) loads in ``backend``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from steca_data.core.errors import RecipeError
from steca_data.core.schemas import Task
from steca_data.envs.alfworld import prompts
from steca_data.envs.alfworld.spec import AlfworldSpec
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec

if TYPE_CHECKING:
    import typer


class AlfworldPlugin(EnvPlugin):
    name: ClassVar[str] = "alfworld"
    spec: ClassVar[type[EnvSpec]] = AlfworldSpec

    def prompt_version(self, game: str) -> str:
        return prompts.PROMPT_VERSION

    def version(self) -> str:
        from steca_data.envs.alfworld.backend import alfworld_version

        return alfworld_version()

    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        from steca_data.envs.alfworld.backend import list_alfworld_tasks

        return list_alfworld_tasks(spec, split_name)

    def backend(self, spec: EnvSpec) -> EnvBackend:
        from steca_data.envs.alfworld.backend import AlfworldBackend

        return AlfworldBackend(spec)

    def action_templates(self, game: str) -> list[str]:
        return list(prompts.ACTIONS)

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        """env.data_dir (relative to the recipe file, else $ALFWORLD_DATA) must hold enough games per split."""
        assert isinstance(spec, AlfworldSpec)
        raw = spec.data_dir or os.environ.get("ALFWORLD_DATA")
        if not raw:
            raise RecipeError([f"{where}: env.data_dir: not set and ALFWORLD_DATA is not set"])
        path = resolve(os.path.expanduser(raw)).resolve()
        if not path.is_dir():
            raise RecipeError(
                [f"{where}: env.data_dir: no game tree at {path} (run `steca-data alfworld generate --out {path}`)"]
            )
        spec.data_dir = str(path)
        for split_name in spec.splits:  # enough games in each fold? (reads only the small traj files)
            try:
                self.tasks(spec, split_name)
            except ValueError as exc:
                raise RecipeError([f"{where}: {exc}"]) from None

    def register_cli(self, app: typer.Typer) -> None:
        from steca_data.envs.alfworld.cli import alfworld_app

        app.add_typer(alfworld_app, name=self.name)
