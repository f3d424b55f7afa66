"""What an environment plugin declares, so adding an environment is one folder plus one registry line.

Everything the rest of the code needs to know about an environment goes through this interface: the
recipe fields (``spec``), the checks that need files, the task list, the version string recorded with
every trajectory, the prompt's action templates and version, and env-specific thought rules. Plugin
modules import only light things at module level; simulators load in ``backend``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from steca_data.core.schemas import Task
from steca_data.envs.spec import EnvSpec

if TYPE_CHECKING:
    import typer

    from steca_data.envs.base import EnvBackend


class EnvPlugin(ABC):
    """One environment. Stateless: the registry makes one instance per process."""

    name: ClassVar[str]
    """The recipe's ``env.name``; also ``Task.env`` of every task the plugin lists."""
    spec: ClassVar[type[EnvSpec]]
    """The pydantic model of the recipe's ``env`` section (fields and validation that need no files)."""

    @abstractmethod
    def prompt_version(self, game: str) -> str:
        """Recorded with every row and evaluation, so results stay comparable when a prompt changes."""

    @abstractmethod
    def version(self) -> str:
        """Package versions of the simulator, e.g. ``textworld-express 1.1.0``; part of cache keys."""

    @abstractmethod
    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        """The tasks of one recipe split, without starting a simulator."""

    @abstractmethod
    def backend(self, spec: EnvSpec) -> EnvBackend:
        """The simulator backend (the heavy imports happen here)."""

    @abstractmethod
    def action_templates(self, game: str) -> list[str]:
        """Action templates listed in the system prompt, e.g. ``take OBJ``."""

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        """An env-specific template thought, tried before the generic verb rules; None falls through."""
        return None

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        """Checks that need files, at recipe load time (``resolve`` maps recipe-relative paths).

        May complete ``spec`` (e.g. make a path absolute); raises ``core.errors.RecipeError`` with one
        line prefixed by ``where`` (the recipe file). Nothing to check by default.
        """
        return None

    def register_cli(self, app: typer.Typer) -> None:
        """Add env-specific commands to ``steca-data`` (e.g. a game generator); none by default."""
        return None
