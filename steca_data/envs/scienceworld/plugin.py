"""ScienceWorld as an environment plugin: 30 task types x their variations on one shared JVM.

Only light modules load here: task listing reads ``catalog.json``; the JVM starts in ``backend``.
"""

from __future__ import annotations

from typing import ClassVar

from steca_data.core.health import Check, fresh_python, java_check, package_version
from steca_data.core.schemas import Task
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.scienceworld import prompts
from steca_data.envs.scienceworld.spec import ScienceWorldSpec
from steca_data.envs.scienceworld.tasks import ENV_NAME, list_sciworld_tasks, sciworld_version
from steca_data.envs.spec import EnvSpec


class ScienceWorldPlugin(EnvPlugin):
    name: ClassVar[str] = ENV_NAME
    spec: ClassVar[type[EnvSpec]] = ScienceWorldSpec

    def prompt_version(self, game: str) -> str:
        return prompts.PROMPT_VERSION

    def version(self) -> str:
        return sciworld_version()

    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        return list_sciworld_tasks(spec, split_name)

    def backend(self, spec: EnvSpec) -> EnvBackend:
        from steca_data.envs.scienceworld.backend import SciWorldBackend

        return SciWorldBackend(spec)  # type: ignore[arg-type]

    def action_templates(self, game: str) -> list[str]:
        return list(prompts.ACTIONS)

    def task_intro(self, game: str) -> str | None:
        return prompts.INTRO

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        return prompts.template_thought(action)

    def doctor_checks(self) -> list[Check]:
        """The scienceworld package (JAR inside, an optional extra) and a Java 17 to run it."""
        name, fix = "ScienceWorld", "pip install -e '.[scienceworld]'"
        version = package_version("scienceworld")
        if not version:
            return [Check(name, "fail", "scienceworld is not installed", fix), java_check(name)]
        probe = fresh_python("import scienceworld.constants as c, os; print(os.path.getsize(c.JAR_PATH))")
        if not probe.ok:
            return [Check(name, "fail", f"scienceworld {version}: {probe.output}", fix), java_check(name)]
        return [Check(name, "ok", f"scienceworld {version} (JAR inside)"), java_check(name)]
