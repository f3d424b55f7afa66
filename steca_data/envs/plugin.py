"""What an environment plugin declares, so adding an environment is one folder plus one registry line.

Everything the rest of the code needs to know about an environment goes through this interface: the
recipe fields (``spec``), the checks that need files, the task list, the version string recorded with
every trajectory, the prompt's action templates and version, and env-specific thought rules. Plugin
modules import only light things at module level; simulators load in ``backend``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from steca_data.core.schemas import Task
from steca_data.envs.spec import EnvSpec

if TYPE_CHECKING:
    import typer

    from steca_data.core.health import Check
    from steca_data.envs.base import EnvBackend


@dataclass(frozen=True)
class GeneratedData:
    """Data an environment makes for itself when the recipe names none (e.g. a game tree).

    The build's ``games`` stage writes it once into a folder under the build directory (``write``), records
    it in the ``artifacts`` table under a key hashing ``settings``, and points the recipe's ``env`` section
    at it (``use``) before any stage lists tasks.
    """

    settings: dict[str, Any]
    """Everything the data is a pure function of (same settings, same bytes)."""
    description: str
    """One line for ``plan``, e.g. '24 train + 4 valid_seen + 4 valid_unseen small games, seed 0'."""
    write: Callable[[Path, int], dict]
    """(empty folder, worker processes) -> a JSON-able summary; raises when the data cannot be made."""
    use: Callable[[Path], EnvSpec]
    """The ``env`` section reading its data from this folder (a written one), as a new section."""


class EnvPlugin(ABC):
    """One environment. Stateless: the registry makes one instance per process."""

    name: ClassVar[str]
    """The recipe's ``env.name``; also ``Task.env`` of every task the plugin lists."""
    spec: ClassVar[type[EnvSpec]]
    """The pydantic model of the recipe's ``env`` section (fields and validation that need no files)."""
    planner: ClassVar[str | None] = None
    """Which planner the sessions' ``remaining_plan`` runs (one line), or None when the environment cannot plan
    from any state: then recipes asking for ground-truth labels or the eps_expert policy are rejected."""

    @abstractmethod
    def prompt_version(self, game: str) -> str:
        """Recorded with every row and evaluation, so results stay comparable when a prompt changes."""

    @abstractmethod
    def version(self) -> str:
        """Package versions of the simulator, e.g. ``textworld-express 1.1.0``; part of cache keys."""

    @abstractmethod
    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        """The tasks of one recipe split, without starting a simulator."""

    def task_notes(self, spec: EnvSpec, split_name: str) -> dict[str, Any] | None:
        """When a split lists fewer tasks than its block names (e.g. a published test file whose scenes are not
        on this machine): ``{"summary": one line, ...}`` saying how many run and why the rest do not; ``plan``
        prints the line and ``eval`` reports write the whole. None (the default): every task of the block runs."""
        return None

    @abstractmethod
    def backend(self, spec: EnvSpec) -> EnvBackend:
        """The simulator backend (the heavy imports happen here)."""

    @abstractmethod
    def action_templates(self, game: str) -> list[str]:
        """Action templates listed in the system prompt, e.g. ``take OBJ``."""

    def task_intro(self, game: str) -> str | None:
        """The system prompt's first sentence (what the agent is in); None keeps the household one."""
        return None

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        """An env-specific template thought, tried before the generic verb rules; None falls through."""
        return None

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        """Checks that need files, at recipe load time (``resolve`` maps recipe-relative paths).

        May complete ``spec`` (e.g. make a path absolute); raises ``core.errors.RecipeError`` with one
        line prefixed by ``where`` (the recipe file). Nothing to check by default.
        """
        return None

    def task_for_record(self, spec: EnvSpec, record: dict) -> Task | None:
        """The task an imported record names, so its expert actions can be replayed (None: it names none).

        ``record`` holds the record's reference fields as strings (``id``, ``game_file``, ``task_type``).
        Raise ``ValueError`` with a reason when the record names a task this environment does not have.
        No record names a task by default.
        """
        return None

    def replay_action(self, action: str, admissible: list[str]) -> str:
        """The action to play for an imported ``action`` (e.g. an older release's wording of a command,
        given the admissible commands); the action itself by default."""
        return action

    def generated_data(self, spec: EnvSpec) -> GeneratedData | None:
        """Data to generate as the build's first stage when the recipe names none; None by default."""
        return None

    def doctor_checks(self) -> list[Check]:
        """What this environment needs on the machine (a JVM, a planner, a simulator package), for
        ``steca-data doctor``; probes that import the simulator run in a fresh interpreter. None by default."""
        return []

    def register_cli(self, app: typer.Typer) -> None:
        """Add env-specific commands to ``steca-data`` (e.g. a game generator); none by default."""
        return None
