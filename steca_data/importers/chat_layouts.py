"""Chat layouts on import: ShareGPT, OpenAI ``messages`` and files that mix them, as one form.

Public agent datasets write conversations in several layouts:

- ShareGPT / FastChat (ETO, IPR, STeCa): ``{"conversations": [{"from": "human"|"gpt", "value": ...}]}``;
- OpenAI chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}``, where ``content``
  may also be a list of ``{"type": "text", "text": ...}`` parts;
- mixtures: ETO's own in-context example file is a list of bare turn lists whose user turns say
  ``role``/``content`` and whose agent turns say ``from``/``content``.

``normalize_record`` rewrites any of these into the one form the ShareGPT importer parses: a record with
``conversations`` of ``{"from": "human"|"gpt", "value": str}``, the record's other fields untouched. A
leading system message becomes the instruction turn followed by a ``gpt: OK`` acknowledgement (the
ETO layout), unless the conversation already acknowledges its own instruction, in which case the system
text is put in front of that instruction. Problems are reported as ``LayoutError`` naming the turn.
"""

from __future__ import annotations

from steca_data.core.react import parse_turn

ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}
TURN_KEYS = ("conversations", "messages")
ACKNOWLEDGEMENT = "OK"


class LayoutError(ValueError):
    """A record whose turns cannot be read in any known layout."""


def turn_text(turn: dict) -> str | None:
    """The turn's text: ``value`` or ``content`` (a string, or OpenAI text parts joined)."""
    text = turn["value"] if "value" in turn else turn.get("content")
    if isinstance(text, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in text):
        return "".join(p["text"] for p in text)
    return text if isinstance(text, str) else None


def normalize_turn(turn: object, where: str) -> dict:
    """One turn as ``{"from": "human"|"gpt"|"system", "value": str}``."""
    if not isinstance(turn, dict):
        raise LayoutError(f"{where} must be an object with from/role and value/content")
    role = turn["from"] if "from" in turn else turn.get("role")
    mapped = ROLES.get(role.lower()) if isinstance(role, str) else None
    if mapped is None:
        raise LayoutError(f"{where}: unknown role {role!r} (expected human/user, gpt/assistant or a leading system)")
    text = turn_text(turn)
    if text is None:
        raise LayoutError(f"{where}: no text (expected a string 'value' or 'content')")
    return {"from": mapped, "value": text}


def _fold_system(turns: list[dict], key: str) -> list[dict]:
    """Leading system turns -> the ETO instruction layout; a system turn anywhere else is an error."""
    lead = 0
    while lead < len(turns) and turns[lead]["from"] == "system":
        lead += 1
    late = next((i for i in range(lead, len(turns)) if turns[i]["from"] == "system"), None)
    if late is not None:
        raise LayoutError(f"{key}[{late}]: a system turn is accepted only at the start of a conversation")
    if not lead:
        return turns
    if lead == len(turns) or turns[lead]["from"] != "human":
        raise LayoutError(f"{key}[{lead - 1}]: a system turn must be followed by a user turn")
    system = "\n\n".join(t["value"] for t in turns[:lead])
    first, rest = turns[lead], turns[lead + 1 :]
    acknowledged = bool(rest) and rest[0]["from"] == "gpt" and not parse_turn(rest[0]["value"]).ok
    if acknowledged:  # [system, instruction, OK, task, ...]: the system text joins the instruction
        return [{"from": "human", "value": f"{system}\n\n{first['value']}"}, *rest]
    return [{"from": "human", "value": system}, {"from": "gpt", "value": ACKNOWLEDGEMENT}, first, *rest]


def normalize_record(record: object) -> object:
    """A record in the importer's ShareGPT form; anything that is not a record is returned unchanged.

    Accepts a dict with ``conversations`` or ``messages``, or a bare list of turns (ETO's example file).
    Records without a turn list are returned as they are, for the importer to report.
    """
    if isinstance(record, list):
        record = {"conversations": record}
    if not isinstance(record, dict):
        return record
    key = next((k for k in TURN_KEYS if isinstance(record.get(k), list)), None)
    if key is None:
        return record
    turns = [normalize_turn(turn, f"{key}[{j}]") for j, turn in enumerate(record[key])]
    out = {k: v for k, v in record.items() if k not in TURN_KEYS}
    out["conversations"] = _fold_system(turns, key)
    return out


def load_records(raw: bytes | str) -> list:
    """The records of a JSON list, or of JSON Lines (one record per line, as OpenAI fine-tuning files); any
    problem, with the file or with one line, is a ``LayoutError`` (the importer keeps line problems apart)."""
    from steca_data.importers.files import ImportFileError, decode, parse_records

    try:
        records, problems = parse_records(decode(raw) if isinstance(raw, bytes) else raw)
    except ImportFileError as exc:
        raise LayoutError(str(exc)) from None
    if problems:
        index = min(problems)
        raise LayoutError(f"record {index}: {problems[index]}")
    return records
