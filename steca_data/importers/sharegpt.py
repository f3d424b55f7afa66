"""Import expert trajectories in the ShareGPT/ETO format that public agent datasets use.

A file is a JSON list of records ``{"id"|"game_file", "conversations": [{"from": "human"|"gpt",
"value": ...}]}``: the first human turn is the instruction (often with an in-context example); an optional
``gpt: OK`` acknowledgement is followed by the task; then ``Thought: ...\\nAction: ...`` and
``Observation: ...`` alternate. Malformed records are reported with their index and skipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from steca_data.core.react import parse_turn, strip_observation
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.importers.chat_layouts import normalize_record

_TASK_MARKER = "Your task is to:"


class RecordError(ValueError):
    pass


def _split_task(text: str) -> tuple[str, str]:
    """(instruction, initial observation) from a task turn such as ALFWorld's."""
    text = strip_observation(text)
    if _TASK_MARKER in text:
        before, after = text.split(_TASK_MARKER, 1)
        return after.strip(), before.strip()
    return text.strip(), text.strip()


def _record_id(record: dict, index: int) -> str:
    return str(record.get("id") or record.get("game_file") or f"record-{index}")


def parse_record(record: object, index: int, env_name: str, env_version: str) -> Trajectory:
    record = normalize_record(record)  # OpenAI messages, mixed from/role keys, bare turn lists
    if not isinstance(record, dict):
        raise RecordError(f"expected an object, got {type(record).__name__}")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError("missing or empty 'conversations' list")
    for j, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in ("human", "gpt")
            or not isinstance(turn.get("value"), str)
        ):
            raise RecordError(f"conversations[{j}] must be {{'from': 'human'|'gpt', 'value': str}}")
    if turns[0]["from"] != "human":
        raise RecordError("conversations[0] must be the human instruction")
    pos = 1
    task_text = turns[0]["value"]
    if len(turns) > 2 and turns[1]["from"] == "gpt" and not parse_turn(turns[1]["value"]).ok:
        if turns[2]["from"] != "human":
            raise RecordError("conversations[2] must be the human task after the acknowledgement")
        task_text, pos = turns[2]["value"], 3
    instruction, initial = _split_task(task_text)
    steps: list[Step] = []
    while pos < len(turns):
        turn = turns[pos]
        if turn["from"] != "gpt":
            raise RecordError(f"conversations[{pos}]: expected a gpt turn, got two human turns in a row")
        parsed = parse_turn(turn["value"])
        if not parsed.ok:
            raise RecordError(f"conversations[{pos}]: no 'Action:' in the agent turn")
        observation = ""
        if pos + 1 < len(turns):
            if turns[pos + 1]["from"] != "human":
                raise RecordError(f"conversations[{pos + 1}]: expected an observation, got two gpt turns in a row")
            observation = strip_observation(turns[pos + 1]["value"])
        steps.append(Step(thought=parsed.thought, action=parsed.action, observation=observation))
        pos += 2
    if not steps:
        raise RecordError("no agent steps")
    steps[-1].done = True
    reward = float(record.get("reward", 1.0))
    if not 0.0 <= reward <= 1.0:
        raise RecordError(f"reward must be in [0, 1], got {reward}")
    rid = _record_id(record, index)
    task = Task(
        task_id=f"{env_name}/{rid}",
        env=env_name,
        game=str(record.get("task_type", env_name)),
        fold="imported",
        split="train",
        unseen=False,
    )
    return Trajectory(
        trajectory_id=f"imported:{rid}",
        source="imported",
        task=task,
        instruction=instruction,
        initial_observation=initial,
        steps=steps,
        outcome_reward=reward,
        success=reward >= 1.0,
        env_name=env_name,
        env_version=env_version,
        thought_source="file",
    )


def read_sharegpt(path: Path, env_name: str, env_version: str):
    """Returns (file digest, [(index, trajectory)], [(index, record id, error)])."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    try:
        records = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(records, list):
        raise RecordError(f"{path}: expected a JSON list of records")
    good, bad = [], []
    for i, record in enumerate(records):
        try:
            good.append((i, parse_record(record, i, env_name, env_version)))
        except (RecordError, ValueError) as exc:
            rid = _record_id(record, i) if isinstance(record, dict) else None
            bad.append((i, rid, str(exc)))
    return digest, good, bad
