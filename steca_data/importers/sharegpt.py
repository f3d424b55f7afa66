"""Import expert trajectories in the ShareGPT/ETO format that public agent datasets use.

A file is a JSON list (or JSON Lines) of records ``{"id"|"game_file", "conversations": [{"from":
"human"|"gpt", "value": ...}]}`` (or another chat layout, see ``chat_layouts``): the first human turn is the
instruction (often with an in-context example); an optional ``gpt: OK`` acknowledgement is followed by the
task; then ``Thought: ...\\nAction: ...`` and ``Observation: ...`` alternate. A problem with the whole file
raises ``ImportFileError`` (see ``files``); a malformed record is reported with its index and skipped, and
never stops the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from steca_data.core.react import parse_turn, strip_observation
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.importers.chat_layouts import normalize_record
from steca_data.importers.files import ImportFileError, read_records, safe_text, text_problem

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


REF_KEYS = ("id", "game_file", "task_type")  # the fields that may tie a record to an environment's task


def _record_id(record: dict, index: int) -> str:
    """The record's id, game file or position; a value too odd to print (e.g. nested too deeply) gives the position."""
    for key in ("id", "game_file"):
        value = record.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"record-{index}"


def _check_text(value: str, where: str) -> None:
    problem = text_problem(value)
    if problem:
        raise RecordError(f"{where}: {problem}")


def _reward(record: dict) -> float:
    reward = record.get("reward", 1.0)
    if isinstance(reward, bool) or not isinstance(reward, int | float):
        raise RecordError(f"reward must be a number in [0, 1], got {_describe(reward)}")
    if math.isnan(reward) or not 0.0 <= reward <= 1.0:
        raise RecordError(f"reward must be in [0, 1], got {reward}")
    return float(reward)


def _describe(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _turns(record: dict) -> list[dict]:
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
        _check_text(turn["value"], f"conversations[{j}]")
    if turns[0]["from"] != "human":
        raise RecordError("conversations[0] must be the human instruction")
    return turns


def _steps(turns: list[dict], pos: int) -> list[Step]:
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
    return steps


def parse_record(record: object, index: int, env_name: str, env_version: str) -> Trajectory:
    record = normalize_record(record)  # OpenAI messages, mixed from/role keys, bare turn lists
    if not isinstance(record, dict):
        raise RecordError(f"expected an object, got {_describe(record)}")
    turns = _turns(record)
    pos = 1
    task_text = turns[0]["value"]
    if len(turns) > 2 and turns[1]["from"] == "gpt" and not parse_turn(turns[1]["value"]).ok:
        if turns[2]["from"] != "human":
            raise RecordError("conversations[2] must be the human task after the acknowledgement")
        task_text, pos = turns[2]["value"], 3
    instruction, initial = _split_task(task_text)
    steps = _steps(turns, pos)
    reward = _reward(record)
    rid = _record_id(record, index)
    for key in REF_KEYS:
        if isinstance(record.get(key), str):
            _check_text(record[key], key)
    task = Task(
        task_id=f"{env_name}/{rid}",
        env=env_name,
        game=str(record["task_type"]) if isinstance(record.get("task_type"), str) else env_name,
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


@dataclass(frozen=True)
class Imported:
    """One readable record: its index in the file, the trajectory as the file tells it, and its reference
    fields (``id``, ``game_file``, ``task_type``: what an environment may map to one of its tasks)."""

    index: int
    trajectory: Trajectory
    ref: dict


@dataclass(frozen=True)
class ImportFile:
    digest: str
    good: list[Imported]
    bad: list[tuple[int, str | None, str]]  # (index, record id or None, error)


def _failed(record: object, index: int, exc: BaseException) -> tuple[int, str | None, str]:
    rid = None
    if isinstance(record, dict):
        rid = _record_id(record, index)
        rid = None if rid == f"record-{index}" else safe_text(rid, 200)
    if isinstance(exc, RecordError | ValueError):
        message = str(exc)
    elif isinstance(exc, RecursionError):
        message = "nested too deeply to read"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return index, rid, safe_text(message)


def import_file(path: Path, env_name: str, env_version: str) -> ImportFile:
    """Every record of ``path`` parsed; raises ``ImportFileError`` only for a problem with the whole file."""
    raw = read_records(path)
    good, bad = [], []
    for i, record in enumerate(raw.records):
        if i in raw.problems:
            bad.append((i, None, raw.problems[i]))
            continue
        try:
            trajectory = parse_record(record, i, env_name, env_version)
        except Exception as exc:  # noqa: BLE001 - one bad record must never stop the others
            bad.append(_failed(record, i, exc))
            continue
        ref = {k: record[k] for k in REF_KEYS if isinstance(record, dict) and isinstance(record.get(k), str)}
        good.append(Imported(i, trajectory, ref))
    return ImportFile(raw.digest, good, bad)


def read_sharegpt(path: Path, env_name: str, env_version: str):
    """Returns (file digest, [(index, trajectory)], [(index, record id, error)]); a problem with the whole
    file raises ``RecordError`` naming the file."""
    try:
        parsed = import_file(path, env_name, env_version)
    except ImportFileError as exc:
        raise RecordError(f"{path}: {exc}") from None
    return parsed.digest, [(g.index, g.trajectory) for g in parsed.good], parsed.bad
