"""ALFWorld on its real engine: generated games (all six task types) or the official data, same loader.

Heavy imports (alfworld, textworld, Fast Downward) happen inside functions, so listing tasks or
validating a recipe never loads the engine.
"""

from __future__ import annotations

from steca_data.envs.alfworld.backend import AlfworldBackend, AlfworldSession, alfworld_version, list_alfworld_tasks
from steca_data.envs.alfworld.problem import TASK_TYPES

__all__ = ["TASK_TYPES", "AlfworldBackend", "AlfworldSession", "alfworld_version", "list_alfworld_tasks"]
