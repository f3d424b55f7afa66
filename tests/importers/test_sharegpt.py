"""The ShareGPT/ETO importer on a fixture written in that format, through a real build."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from datasets import load_from_disk

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.importers.sharegpt import read_sharegpt
from steca_data.recipe.model import load_recipe

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sharegpt_alfworld.json"


def test_parses_good_records_and_reports_bad_ones_by_index():
    _, good, bad = read_sharegpt(FIXTURE, "alfworld", "imported")
    assert [i for i, _ in good] == [0, 1]
    first = good[0][1]
    assert first.instruction == "put a mug in desk."
    assert first.initial_observation.startswith("You are in the middle of a room.")
    assert [s.action for s in first.steps] == [
        "go to shelf 1",
        "take mug 1 from shelf 1",
        "go to desk 1",
        "move mug 1 to desk 1",
    ]
    assert first.steps[1].thought == "Now I find a mug (1). Next, I need to take it."
    assert first.steps[0].observation == "On the shelf 1, you see a mug 1, and a pen 2."
    second = good[1][1]
    assert second.steps[-1].action == "use desklamp 1" and second.steps[-1].observation == ""
    errors = {i: (rid, msg) for i, rid, msg in bad}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7]
    assert "conversations" in errors[2][1]
    assert "human instruction" in errors[3][1]
    assert "no 'Action:'" in errors[4][1] and errors[4][0] == "no-action"
    assert "two gpt turns" in errors[5][1]
    assert errors[6][0] is None and "expected an object" in errors[6][1]
    assert "conversations[0]" in errors[7][1]


def test_import_build_records_errors_and_writes_rows(tmp_path):
    data = tmp_path / "experts.json"
    data.write_text(FIXTURE.read_text())
    from tests.conftest import write_recipe

    path = write_recipe(tmp_path, name="imported", experts={"source": "sharegpt", "path": "experts.json"})
    summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert summary.computed == 2 and summary.failed == 6
    dd = load_from_disk(str(tmp_path / "build" / "dataset"))
    assert len(dd["expert"]) == 2
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    indexes = [r[0] for r in con.execute("select record_index from import_errors order by 1").fetchall()]
    assert indexes == [2, 3, 4, 5, 6, 7]
    con.close()
    # a second build imports nothing new
    again = Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert again.computed == 0 and again.cached == 2


def test_fixture_is_valid_json_list():
    assert isinstance(json.loads(FIXTURE.read_text()), list)
