"""Conversation shapes the exporters share: role/content messages, loss splits, ShareGPT turns.

Everything here is a pure function of rows and trajectories, rendered with the build's own prompt code
(``render_messages``), so an exported conversation is the conversation the build trained on.
"""

from __future__ import annotations

from steca_data.core.react import format_observation, format_turn
from steca_data.core.schemas import Trajectory
from steca_data.envs.prompting import render_messages

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
Turn = dict[str, str]  # {"from": "human" | "gpt", "value": str}

TASK_MARKER = "Your task is to:"  # how ETO/IPR/STeCa task turns end, and what the sharegpt importer splits on
ACKNOWLEDGEMENT = "OK"  # the gpt turn after the instruction in ETO/IPR/STeCa files


def plain(messages: list[dict]) -> list[Message]:
    """Role and content only (the conversational format TRL and chat templates read)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def split_at_loss(messages: list[dict]) -> tuple[list[Message], list[Message]]:
    """(prompt, completion): the completion starts at the first loss-bearing assistant turn.

    Faithful only when the loss-bearing assistant turns form a suffix, which is how every steca row is
    built (``render_messages(..., loss_from_step=t)``); anything else is refused rather than mangled.
    """
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("loss")), None)
    if first is None:
        raise ValueError("no assistant turn bears loss")
    if any(m["role"] == "assistant" and not m.get("loss") for m in messages[first:]):
        raise ValueError("an assistant turn without loss follows a loss-bearing one")
    return plain(messages[:first]), plain(messages[first:])


def conversation(trajectory: Trajectory, include_example: bool) -> list[Message]:
    """The whole episode as the build renders it (system, task, then assistant/observation turns)."""
    return plain([m.model_dump() for m in render_messages(trajectory, include_example=include_example)])


def continuation(trajectory: Trajectory, first_step: int) -> list[Message]:
    """Assistant/observation turns of ``steps[first_step:]``, ending on the last assistant turn."""
    steps = trajectory.steps[first_step:]
    out: list[Message] = []
    for i, step in enumerate(steps):
        out.append({"role": "assistant", "content": format_turn(step.thought, step.action)})
        if i < len(steps) - 1:
            out.append({"role": "user", "content": format_observation(step.observation)})
    return out


def history(trajectory: Trajectory, include_example: bool, steps: int) -> list[Message]:
    """System, task and the first ``steps`` steps with their observations: a prompt ending on a user turn."""
    return conversation(trajectory, include_example)[: 2 + 2 * steps]


# ------------------------------------------------------------------------------------------- ShareGPT
def task_turn(instruction: str, initial_observation: str) -> str:
    """The task turn as ETO/IPR/STeCa files write it: the first observation, then ``Your task is to: ...``.

    The sharegpt importer splits exactly here, so instruction and observation survive a round trip.
    """
    return f"{initial_observation.strip()}\n\n{TASK_MARKER} {instruction.strip()}"


def task_turn_from_message(content: str) -> str:
    """Rewrite a rendered task message (``Task: ...\\nObservation: ...``) as an ETO-style task turn."""
    head, sep, observation = content.partition("\nObservation: ")
    if not head.startswith("Task: ") or not sep:
        return content
    return task_turn(head[len("Task: ") :], observation)


def to_sharegpt(messages: list[Message]) -> list[Turn]:
    """role/content -> from/value as FastChat reads it: human and gpt turns strictly alternating.

    A leading system message becomes the instruction turn followed by the ``OK`` acknowledgement, and
    the task message after it an ETO-style task turn: the layout of the ETO/IPR/STeCa ALFWorld files.
    """
    turns: list[Turn] = []
    rest = messages
    if messages and messages[0]["role"] == "system":
        turns += [{"from": "human", "value": messages[0]["content"]}, {"from": "gpt", "value": ACKNOWLEDGEMENT}]
        rest = messages[1:]
        if rest and rest[0]["role"] == "user":
            turns.append({"from": "human", "value": task_turn_from_message(rest[0]["content"])})
            rest = rest[1:]
    turns += [{"from": "gpt" if m["role"] == "assistant" else "human", "value": m["content"]} for m in rest]
    return turns


def trajectory_turns(trajectory: Trajectory, system: str) -> list[Turn]:
    """A whole episode as ShareGPT turns, the last observation included (so a re-import loses nothing)."""
    turns: list[Turn] = [
        {"from": "human", "value": system},
        {"from": "gpt", "value": ACKNOWLEDGEMENT},
        {"from": "human", "value": task_turn(trajectory.instruction, trajectory.initial_observation)},
    ]
    for step in trajectory.steps:
        turns.append({"from": "gpt", "value": format_turn(step.thought, step.action)})
        turns.append({"from": "human", "value": format_observation(step.observation)})
    return turns
