"""Agent prompts: the generic instruction, the ReAct turns and the history window.

As in the paper (ETO/IPR/STeCa): a task instruction naming the environment's action templates, one
in-context example trajectory, then the task and the history as alternating turns. Nothing here knows an
environment: callers pass the action templates that the environment's plugin declares (and record its
prompt version); ``steca_data.envs.prompting`` does that lookup.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from steca_data.core.react import format_observation, format_turn
from steca_data.core.schemas import ChatMessage, Step, Trajectory

DEFAULT_INTRO = "Interact with a household to solve a task."
_INSTRUCTION = """{intro} Each turn, you will be given an observation. \
Think about what to do, then act. Answer with exactly two lines:
Thought: <your reasoning>
Action: <one action>
Available actions (replace the capitals with names from the observations):
{actions}
Only use objects and places that appear in the observations."""


@cache
def example_trajectory(game: str) -> Trajectory | None:
    """The in-context example shipped for ``game`` (a train-fold expert trajectory), if any."""
    path = resources.files("steca_data") / "resources" / "examples" / f"{game}.json"
    if not path.is_file():
        return None
    return Trajectory.model_validate(json.loads(path.read_text()))


def system_text(actions: list[str], game: str, include_example: bool = True, intro: str | None = None) -> str:
    """The system prompt: ``intro`` (the environment's; a household by default), the instruction listing
    ``actions`` and, if asked and shipped, ``game``'s example."""
    text = _INSTRUCTION.format(intro=intro or DEFAULT_INTRO, actions="\n".join(f"- {a}" for a in actions))
    example = example_trajectory(game) if include_example else None
    if example is not None:
        lines = [f"Task: {example.instruction}", format_observation(example.initial_observation)]
        for step in example.steps:
            lines += [format_turn(step.thought, step.action), format_observation(step.observation)]
        text += "\n\nHere is an example.\n" + "\n".join(lines) + "\n(End of example.)"
    return text


def task_message(trajectory: Trajectory) -> str:
    return f"Task: {trajectory.instruction}\n{format_observation(trajectory.initial_observation)}"


def trajectory_messages(system: str, trajectory: Trajectory, loss_from_step: int = 0) -> list[ChatMessage]:
    """Chat messages for a trajectory; assistant turns from ``loss_from_step`` on bear the loss."""
    messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=task_message(trajectory))]
    for i, step in enumerate(trajectory.steps):
        messages.append(
            ChatMessage(role="assistant", content=format_turn(step.thought, step.action), loss=i >= loss_from_step)
        )
        if i < len(trajectory.steps) - 1:
            messages.append(ChatMessage(role="user", content=format_observation(step.observation)))
    return messages


def episode_messages(system: str, instruction: str, initial_observation: str, steps: list[Step]) -> list[ChatMessage]:
    """The full conversation of an episode in progress, ending with the latest observation (a prompt)."""
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=f"Task: {instruction}\n{format_observation(initial_observation)}"),
    ]
    for step in steps:
        messages.append(ChatMessage(role="assistant", content=format_turn(step.thought, step.action)))
        messages.append(ChatMessage(role="user", content=format_observation(step.observation)))
    return messages


# ------------------------------------------------------------------------------------------ history window


def window_messages(messages: list[ChatMessage], history: int | None) -> list[ChatMessage]:
    """THE history window, shared by training and inference so the model is trained on what it will see.

    Keeps the system prompt, the task message (instruction + first observation) and the last ``history``
    exchanges (an assistant turn + the observation answering it). A prompt for inference ends with an
    observation; a training window ends with the assistant turn being learnt, which sees exactly the
    context it would see at inference. ``history=None`` keeps everything.
    """
    if history is None:
        return list(messages)
    head, body = messages[:2], messages[2:]
    target = body[-1:] if body and body[-1].role == "assistant" else []
    pairs = body[: len(body) - len(target)]  # (assistant, observation) pairs
    keep = pairs[max(0, len(pairs) - 2 * history) :] if history else []
    return head + keep + target


def training_windows(messages: list[ChatMessage], history: int | None) -> list[list[ChatMessage]]:
    """Cut a training row into windows such that every loss-bearing assistant turn is learnt exactly once.

    Each window ends at an assistant turn and, through ``window_messages``, holds the ``history`` turns
    before it; all loss-bearing assistant turns inside a window keep their loss (far more signal per FLOP
    than loss on the last turn only), and windows do not overlap in their loss turns. Turns without loss
    (context, partial masking) stay as context. Returns the windows in trajectory order.
    """
    if history is None:
        return [list(messages)] if any(m.loss for m in messages) else []
    assistant = [i for i, m in enumerate(messages) if m.role == "assistant"]
    windows: list[list[ChatMessage]] = []
    j = len(assistant) - 1
    while j >= 0:
        if not messages[assistant[j]].loss:
            j -= 1
            continue
        windows.append(window_messages(messages[: assistant[j] + 1], history))
        j -= history + 1
    return windows[::-1]
