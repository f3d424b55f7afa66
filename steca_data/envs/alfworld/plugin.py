"""ALFWorld as an environment plugin: generated or official game trees on the real engine.

Only light modules load here; the engine (alfworld, textworld, Fast Downward) loads in ``backend``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from steca_data.core.errors import RecipeError
from steca_data.core.health import Check, fresh_python, package_version
from steca_data.core.schemas import Task
from steca_data.envs.alfworld import prompts
from steca_data.envs.alfworld.spec import AlfworldSpec, GenerateSpec
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin, GeneratedData
from steca_data.envs.spec import EnvSpec

if TYPE_CHECKING:
    import typer


class AlfworldPlugin(EnvPlugin):
    name: ClassVar[str] = "alfworld"
    spec: ClassVar[type[EnvSpec]] = AlfworldSpec
    planner: ClassVar[str | None] = "Fast Downward on the game's PDDL (uniform-cost search: shortest plans)"

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

    def doctor_checks(self) -> list[Check]:
        """alfworld and Fast Downward, the planner its engine and expert run on (a compiled library)."""
        version = package_version("alfworld")
        if not version:
            return [Check("ALFWorld", "fail", "alfworld is not installed", "pip install -e '.[alfworld]'")]
        probe = fresh_python("import fast_downward; fast_downward.load_lib()")
        planner = (
            Check("Fast Downward (ALFWorld's planner)", "ok", "its library loads")
            if probe.ok
            else Check(
                "Fast Downward (ALFWorld's planner)",
                "fail",
                probe.output,
                "pip install --force-reinstall fast-downward-textworld (compiles with g++ where no wheel fits)",
            )
        )
        return [Check("ALFWorld", "ok", f"alfworld {version}"), planner]

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        """A named tree (env.data_dir, relative to the recipe file, else $ALFWORLD_DATA) must hold enough games
        per split; without one the build generates its games, and env.generate must cover the splits."""
        assert isinstance(spec, AlfworldSpec)
        raw = spec.named_tree()
        if not raw:
            try:
                spec.generation_counts()
            except ValueError as exc:
                raise RecipeError([f"{where}: env.{exc}"]) from None
            return
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

    def task_for_record(self, spec: EnvSpec, record: dict) -> Task | None:
        from steca_data.envs.alfworld.backend import task_for_record

        return task_for_record(spec, record)

    def replay_action(self, action: str, admissible: list[str]) -> str:
        from steca_data.envs.alfworld.backend import replay_action

        return replay_action(action, admissible)

    def generated_data(self, spec: EnvSpec) -> GeneratedData | None:
        """The game set of ``env.generate`` when no tree is named (what ``alfworld generate`` would write)."""
        assert isinstance(spec, AlfworldSpec)
        if spec.named_tree():
            return None
        from steca_data.envs.alfworld.generate import GENERATOR_VERSION, write_generated

        asked, counts = spec.generate or GenerateSpec(), spec.generation_counts()
        settings = {
            "generator": GENERATOR_VERSION,
            "seed": asked.seed,
            "games": counts,
            "size": asked.size,
            "task_types": list(spec.task_types()),
        }
        description = (
            f"{counts['train']} train + {counts['valid_seen']} valid_seen + {counts['valid_unseen']} valid_unseen "
            f"{settings['size']} games, seed {settings['seed']}"
        )
        return GeneratedData(
            settings, description, lambda out, workers: write_generated(out, settings, workers), spec.with_generated
        )

    def register_cli(self, app: typer.Typer) -> None:
        from steca_data.envs.alfworld.cli import alfworld_app

        app.add_typer(alfworld_app, name=self.name)
