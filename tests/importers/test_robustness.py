"""Malformed import files: a problem with the whole file is one line and exit 2 before any work; a problem
with one record is an ``import_errors`` row by index, and every other record is still imported."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import duckdb
import pytest
from datasets import load_from_disk

from steca_data.build.builder import Builder
from steca_data.cli.common import run_app
from steca_data.cli.main import app
from steca_data.core.errors import RecipeError
from steca_data.core.progress import Reporter
from steca_data.importers.files import ImportFileError, parse_records, text_problem
from steca_data.recipe.model import load_recipe
from tests.conftest import write_recipe

TASK = "You are in the middle of a room. You see a desk 1 and a shelf 1.\nYour task is to: put a mug in desk."


def record(rid: str, **extra) -> dict:
    turns = [
        {"from": "human", "value": "Interact with a household to solve a task."},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": TASK},
        {"from": "gpt", "value": "Thought: The mug is on the shelf.\nAction: go to shelf 1"},
        {"from": "human", "value": "Observation: On the shelf 1, you see a mug 1."},
        {"from": "gpt", "value": "Thought: Take it.\nAction: take mug 1 from shelf 1"},
    ]
    return {"id": rid, "conversations": turns, **extra}


DEEP = 100_000  # far past Python's recursion limit


def steca_data(capsys, *args: str) -> tuple[int, str]:
    """``steca-data ARGS`` in-process under its real entry point (the one error policy): (exit code, output)."""
    capsys.readouterr()
    code = run_app(app, [str(a) for a in args], prog="steca-data")
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _recipe(tmp_path: Path, data: bytes, datasets=("expert",), **sections) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "experts.json").write_bytes(data)
    return write_recipe(
        tmp_path, name="imported", experts={"source": "sharegpt", "path": "experts.json"}, datasets=list(datasets),
        **sections,
    )  # fmt: skip


def _import_errors(tmp_path: Path) -> dict[int, str]:
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    try:
        return dict(con.execute("select record_index, error from import_errors order by 1").fetchall())
    finally:
        con.close()


# ------------------------------------------------------------------------------------------ file level
FILE_PROBLEMS = {
    "not-json": (b'[{"id": "a", "conversations": [', "not valid JSON"),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not valid JSON"),
    "object": (json.dumps({"data": [record("a")]}).encode(), "got an object (keys: data)"),
    "scalar": (b"42", "got a number"),
    "empty": (b"  \n", "the file is empty"),
    "empty-list": (b"[]", "holds no records"),
    "deep-object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nested too deeply"),
    "utf16-broken": (codecs.BOM_UTF16_LE + b"[\x00{\x00x", "not valid UTF-16 text"),
}


@pytest.mark.parametrize("case", sorted(FILE_PROBLEMS))
def test_a_file_level_problem_is_one_line_and_exit_2_before_any_work(tmp_path, case, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    data, message = FILE_PROBLEMS[case]
    path = _recipe(tmp_path, data)
    code, output = steca_data(capsys, "build", path)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and "experts.path" in lines[0] and message in lines[0], output
    assert "Traceback" not in output
    assert not (tmp_path / "build").exists()  # nothing written, not even a cache
    code, output = steca_data(capsys, "plan", path)
    assert code == 2 and message in output and not (tmp_path / "build").exists()


def test_file_level_problems_are_found_before_the_build_opens_its_cache(tmp_path):
    path = _recipe(tmp_path, b"{oops")
    with pytest.raises(RecipeError, match=r"experts\.path: .*experts\.json: not valid JSON nor JSON Lines"):
        Builder(load_recipe(path), Reporter(quiet=True))
    assert not (tmp_path / "build").exists()


# ---------------------------------------------------------------------------------------- record level
def _mixed_file() -> bytes:
    """Good records at 0, 3 and 8; every other record is broken in its own way."""
    deep_turn = "[" * DEEP + "]" * DEEP
    parts = [
        json.dumps(record("good-0")),
        json.dumps(record("null-reward", reward=None)),
        json.dumps(record("list-reward", reward=[1])),
        json.dumps(record("good-3", reward=1)),
        json.dumps(record("deep"))[:-1] + ', "extra": ' + deep_turn + "}",
        json.dumps(record("surrogate")).replace("go to shelf 1", "go to shelf \\ud800"),
        json.dumps(record("latin-1"), ensure_ascii=False).replace("Take it.", "Prends-le, café."),
        json.dumps({"id": ["x" * 3] * 2, "conversations": "nope"}),
        json.dumps(record("good-8", reward=0.5)),
    ]
    raw = ("[" + ",\n".join(parts) + "]").encode("utf-8")
    return raw.replace("café".encode(), "caf\xe9".encode("latin-1"))  # one latin-1 byte in record 6


def test_each_bad_record_is_an_import_error_by_index_and_the_rest_import(tmp_path, capsys):
    path = _recipe(tmp_path, _mixed_file())
    code, output = steca_data(capsys, "build", path)
    assert code == 0, output
    assert "see import_errors" in output and "Traceback" not in output
    errors = _import_errors(tmp_path)
    assert sorted(errors) == [1, 2, 4, 5, 6, 7]
    assert "reward must be a number in [0, 1], got null" in errors[1]
    assert "got a list" in errors[2]
    assert "nested too deeply" in errors[4]
    assert "lone surrogate \\ud800" in errors[5]
    assert "byte 0xE9 is not UTF-8" in errors[6]
    assert "conversations" in errors[7]
    dd = load_from_disk(str(tmp_path / "build" / "dataset"))
    assert sorted(r["provenance"]["task_id"] for r in dd["expert"]) == [
        "textworld_express/good-0",
        "textworld_express/good-3",
        "textworld_express/good-8",
    ]


def test_the_import_stage_reports_skipped_records_as_import_errors(tmp_path):
    path = _recipe(tmp_path, _mixed_file())
    summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
    (stage,) = [r for r in summary.results if r.stage == "import"]
    assert stage.computed == 3 and stage.failed == 6 and stage.unit_failures == 0  # the file's problem, not units'
    assert stage.notes == ["6 record(s) skipped: see import_errors"]
    assert "see import_errors" in stage.first_error


def test_json_lines_with_a_bad_line_and_byte_order_marks(tmp_path):
    lines = [json.dumps(record("a")), '{"id": "b", "conversations": [', json.dumps(record("c"))]
    records, problems = parse_records("\n".join(lines) + "\n")
    assert records[0]["id"] == "a" and records[2]["id"] == "c"
    assert list(problems) == [1] and "line 2: not valid JSON" in problems[1]
    for name, data in (
        ("utf-8-bom", codecs.BOM_UTF8 + json.dumps([record("a")]).encode()),
        ("utf-16-bom", json.dumps([record("a")], ensure_ascii=False).encode("utf-16")),
    ):
        folder = tmp_path / name
        summary = Builder(load_recipe(_recipe(folder, data)), Reporter(quiet=True)).build()
        assert summary.output.counts == {"expert": 1}, name


def test_text_problems_are_named():
    assert text_problem("fine é") is None
    assert "lone surrogate \\udfff" in text_problem("x\udfff")
    assert "byte 0xE9" in text_problem(b"caf\xe9".decode("utf-8", "surrogateescape"))
    with pytest.raises(ImportFileError, match="got a string"):
        parse_records('"records"')


def test_engine_recipes_skip_records_that_name_no_task(tmp_path):
    """dc/de/ds need experts replayed in the environment: records naming no task are import errors."""
    path = _recipe(
        tmp_path, json.dumps([record("a"), record("b")]).encode(), datasets=("expert", "dc", "de", "ds"),
        policy={"backend": "random"},
    )  # fmt: skip
    summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
    errors = _import_errors(tmp_path)
    assert sorted(errors) == [0, 1] and all("names no task of textworld_express" in e for e in errors.values())
    assert summary.output.counts == {"expert": 0, "dc": 0, "de": 0, "ds": 0}
