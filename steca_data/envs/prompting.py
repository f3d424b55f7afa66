"""Prompts for a named environment: the generic prompt of ``core.prompts`` filled from the env's plugin.

``core`` may not import the environments (layers point one way), so this adapter, one layer up, looks up
the action templates and prompt version. Tasks of an environment that is not registered (e.g. rows read
from an old cache) get no action list and the version ``custom``, as before plugins existed.
"""

from __future__ import annotations

from steca_data.core.prompts import episode_messages, system_text, trajectory_messages
from steca_data.core.schemas import ChatMessage, Step, Trajectory
from steca_data.envs.registry import find_plugin

CUSTOM_PROMPT_VERSION = "custom"


def prompt_version(env: str, game: str) -> str:
    """What every row and evaluation records, so results stay comparable when a prompt changes."""
    found = find_plugin(env)
    return found.prompt_version(game) if found else CUSTOM_PROMPT_VERSION


def action_templates(env: str, game: str) -> list[str]:
    found = find_plugin(env)
    return found.action_templates(game) if found else []


def task_intro(env: str, game: str) -> str | None:
    found = find_plugin(env)
    return found.task_intro(game) if found else None


def system_prompt(env: str, game: str, include_example: bool = True) -> str:
    return system_text(action_templates(env, game), game, include_example, task_intro(env, game))


def render_messages(trajectory: Trajectory, include_example: bool = True, loss_from_step: int = 0) -> list[ChatMessage]:
    """Chat messages for a trajectory; assistant turns from ``loss_from_step`` on bear the loss."""
    system = system_prompt(trajectory.task.env, trajectory.task.game, include_example)
    return trajectory_messages(system, trajectory, loss_from_step)


def history_messages(
    env: str,
    game: str,
    instruction: str,
    initial_observation: str,
    steps: list[Step],
    include_example: bool = True,
) -> list[ChatMessage]:
    """The full conversation of an episode in progress, ending with the latest observation (a prompt)."""
    return episode_messages(system_prompt(env, game, include_example), instruction, initial_observation, steps)
