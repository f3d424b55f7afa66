"""TextWorldExpress as an environment plugin (twc, cookingworld, coin on one shared JVM)."""

from __future__ import annotations

from typing import ClassVar

from steca_data.core.health import Check, java_check, package_version
from steca_data.core.schemas import Task
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec
from steca_data.envs.textworld_express import prompts
from steca_data.envs.textworld_express.spec import TextWorldExpressSpec
from steca_data.envs.textworld_express.tasks import ENV_NAME, list_twx_tasks, twx_version


class TextWorldExpressPlugin(EnvPlugin):
    name: ClassVar[str] = ENV_NAME
    spec: ClassVar[type[EnvSpec]] = TextWorldExpressSpec

    def prompt_version(self, game: str) -> str:
        return prompts.PROMPT_VERSION

    def version(self) -> str:
        return twx_version()

    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        return list_twx_tasks(spec, split_name)

    def backend(self, spec: EnvSpec) -> EnvBackend:
        from steca_data.envs.textworld_express.backend import TWXBackend

        return TWXBackend(spec)

    def action_templates(self, game: str) -> list[str]:
        return list(prompts.ACTIONS.get(game, []))

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        return prompts.template_thought(game, action)

    def doctor_checks(self) -> list[Check]:
        version = package_version("textworld-express")
        package = (
            Check("TextWorldExpress", "ok", f"textworld-express {version} (JAR inside)")
            if version
            else Check("TextWorldExpress", "fail", "textworld-express is not installed", "pip install -e .")
        )
        return [package, java_check("TextWorldExpress")]
