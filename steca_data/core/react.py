"""The ReAct turn format: ``Thought: ...\\nAction: ...`` written by agents, parsed back by us."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ACTION = re.compile(r"^\s*Action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^\s*Thought\s*:\s*(.*?)(?=^\s*Action\s*:|\Z)", re.IGNORECASE | re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class ParsedTurn:
    thought: str
    action: str | None  # None when the reply has no parsable action

    @property
    def ok(self) -> bool:
        return bool(self.action)


def format_turn(thought: str, action: str) -> str:
    return f"Thought: {thought.strip()}\nAction: {action.strip()}" if thought.strip() else f"Action: {action.strip()}"


def parse_turn(text: str) -> ParsedTurn:
    """Split an assistant reply into thought and action; the first ``Action:`` line wins."""
    action_match = _ACTION.search(text)
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group(1).strip() if thought_match else ""
    action = action_match.group(1).strip() if action_match else ""
    if action_match and not thought_match:
        thought = text[: action_match.start()].strip()
    return ParsedTurn(thought=thought, action=action or None)


def format_observation(observation: str) -> str:
    return f"Observation: {observation.strip()}"


def strip_observation(text: str) -> str:
    text = text.strip()
    return text[len("Observation:") :].strip() if text.lower().startswith("observation:") else text
