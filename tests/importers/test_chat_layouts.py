"""Chat layouts on import: OpenAI ``messages``, ShareGPT ``conversations`` and files mixing their keys
(ETO's own in-context example file) all import as the same trajectory."""

from __future__ import annotations

import json

import pytest

from steca_data.importers.chat_layouts import LayoutError, load_records, normalize_record
from steca_data.importers.sharegpt import read_sharegpt

SYSTEM = "Interact with a household to solve a task."
TASK = "You are in the middle of a room. You see a desk 1 and a shelf 1.\n\nYour task is to: put a mug in desk."
STEPS = [
    ("Thought: The mug may be on the shelf.\nAction: go to shelf 1", "Observation: On the shelf 1, you see a mug 1."),
    ("Thought: Take it.\nAction: take mug 1 from shelf 1", "Observation: You pick up the mug 1 from the shelf 1."),
    ("Thought: Now the desk.\nAction: move mug 1 to desk 1", "Observation: You move the mug 1 to the desk 1."),
]

SHAREGPT = {
    "id": "mug",
    "conversations": [
        {"from": "human", "value": SYSTEM},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": TASK},
        *[t for a, o in STEPS for t in ({"from": "gpt", "value": a}, {"from": "human", "value": o})],
    ],
}
OPENAI = {
    "id": "mug",
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": TASK},
        *[t for a, o in STEPS for t in ({"role": "assistant", "content": a}, {"role": "user", "content": o})],
    ],
}
OPENAI_PARTS = {
    "id": "mug",
    "messages": [
        {**m, "content": [{"type": "text", "text": m["content"][:5]}, {"type": "text", "text": m["content"][5:]}]}
        for m in OPENAI["messages"]
    ],
}
# ETO's eval_agent/prompt/icl_examples/alfworld_icl.json: bare turn lists, user turns role/content,
# agent turns from/content
ETO_ICL = [
    {"role": "user", "content": TASK},
    *[t for a, o in STEPS for t in ({"from": "gpt", "content": a}, {"role": "user", "content": o})],
]
MIXED = {
    "id": "mug",
    "conversations": [
        {"from": "human", "value": SYSTEM},
        {"role": "assistant", "content": "OK"},
        {"role": "user", "value": TASK},
        *[t for a, o in STEPS for t in ({"from": "gpt", "content": a}, {"role": "human", "value": o})],
    ],
}


def _import(tmp_path, records: list) -> tuple[list, list]:
    path = tmp_path / "experts.json"
    path.write_text(json.dumps(records))
    _, good, bad = read_sharegpt(path, "alfworld", "test")
    return [t for _, t in good], bad


def _steps(trajectory) -> list[tuple[str, str, str]]:
    return [(s.thought, s.action, s.observation) for s in trajectory.steps]


@pytest.mark.parametrize("layout", [OPENAI, OPENAI_PARTS, MIXED], ids=["openai", "openai-parts", "mixed-keys"])
def test_every_layout_imports_as_the_sharegpt_record_does(tmp_path, layout):
    (reference,), _ = _import(tmp_path, [SHAREGPT])
    (imported,), bad = _import(tmp_path, [layout])
    assert not bad
    assert imported.instruction == reference.instruction == "put a mug in desk."
    assert imported.initial_observation == reference.initial_observation
    assert _steps(imported) == _steps(reference)
    assert imported.steps[1].action == "take mug 1 from shelf 1"
    assert imported.task.task_id == reference.task.task_id  # the record's id survives normalisation


def test_eto_in_context_example_file_imports(tmp_path):
    (imported,), bad = _import(tmp_path, [ETO_ICL])  # a list of bare turn lists
    assert not bad
    (reference,), _ = _import(tmp_path, [SHAREGPT])
    assert _steps(imported) == _steps(reference) and imported.instruction == "put a mug in desk."


def test_system_message_becomes_the_eto_instruction_turns():
    turns = normalize_record(OPENAI)["conversations"]
    assert turns[:3] == [
        {"from": "human", "value": SYSTEM},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": TASK},
    ]
    # a conversation that acknowledges its own instruction keeps one acknowledgement
    acked = {"messages": [{"role": "system", "content": "Be brief."}, *normalize_record(SHAREGPT)["conversations"]]}
    acked["messages"] = [
        acked["messages"][0],
        *[
            {"role": {"human": "user", "gpt": "assistant"}[t["from"]], "content": t["value"]}
            for t in acked["messages"][1:]
        ],
    ]
    turns = normalize_record(acked)["conversations"]
    assert turns[0] == {"from": "human", "value": f"Be brief.\n\n{SYSTEM}"} and turns[1]["value"] == "OK"
    assert turns[2]["value"] == TASK


def test_sharegpt_records_are_left_as_they_are():
    assert normalize_record(SHAREGPT) == SHAREGPT
    assert normalize_record(normalize_record(OPENAI)) == normalize_record(OPENAI)
    assert normalize_record("not a record") == "not a record"
    assert normalize_record({"id": "x"}) == {"id": "x"}  # no turns: the importer reports it


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([{"role": "tool", "content": "x"}], "messages[0]: unknown role 'tool'"),
        ([{"role": "user"}], "messages[0]: no text"),
        (["hello"], "messages[0] must be an object"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "messages[1]: a system turn"),
        ([{"role": "system", "content": "only"}], "messages[0]: a system turn must be followed"),
    ],
)
def test_unreadable_turns_are_named(turns, message):
    with pytest.raises(LayoutError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize_record({"id": "bad", "messages": turns})


def test_bad_records_are_reported_by_index_and_the_rest_imports(tmp_path):
    records = [OPENAI, {"id": "bad", "messages": [{"role": "tool", "content": "x"}]}, ETO_ICL]
    good, bad = _import(tmp_path, records)
    assert len(good) == 2
    assert [(i, rid) for i, rid, _ in bad] == [(1, "bad")] and "unknown role" in bad[0][2]


def test_load_records_reads_json_and_json_lines():
    assert load_records(json.dumps([OPENAI, SHAREGPT])) == [OPENAI, SHAREGPT]
    assert load_records("\n".join(json.dumps(r) for r in (OPENAI, SHAREGPT)) + "\n") == [OPENAI, SHAREGPT]
    assert load_records(json.dumps(OPENAI).encode()) == [OPENAI]  # JSON Lines of one record
    with pytest.raises(LayoutError, match="not valid JSON"):
        load_records("{oops")
    with pytest.raises(LayoutError, match="expected a JSON list"):
        load_records('{"id": 1}')
