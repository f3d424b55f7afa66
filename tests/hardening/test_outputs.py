"""Outputs switch as one unit (dataset/, parquet/, README.md, recipe.yaml) and ``inspect`` checks they agree."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steca_data.build import switch
from tests.conftest import write_recipe

NAMES = ["dataset", "parquet", "README.md", "recipe.yaml"]


def _make_set(root: Path, tag: str) -> None:
    for name in NAMES:
        if "." in name:
            (root / name).write_text(tag)
        else:
            (root / name).mkdir(parents=True)
            (root / name / "data").write_text(tag)


def _tags(build: Path) -> set[str]:
    return {(p / "data" if p.is_dir() else p).read_text() for p in (build / n for n in NAMES) if p.exists()}


@pytest.mark.parametrize("renames_before_kill", range(10))
def test_a_kill_anywhere_in_the_switch_leaves_the_old_set_or_the_new_one(tmp_path, monkeypatch, renames_before_kill):
    build = tmp_path / "build"
    build.mkdir()
    _make_set(build, "old")
    _make_set(switch.staging_dir(build), "new")
    calls = {"n": 0}
    real_rename = Path.rename

    def dying_rename(self, target):
        if calls["n"] == renames_before_kill:
            raise KeyboardInterrupt("killed")  # as abrupt as it gets in-process: nothing after this runs
        calls["n"] += 1
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", dying_rename)
    try:
        switch.switch(build, NAMES)
        finished = True
    except KeyboardInterrupt:
        finished = False
    monkeypatch.setattr(Path, "rename", real_rename)
    marked = renames_before_kill >= 1  # the first rename publishes the completion mark
    if not finished:
        assert switch.pending(build) == marked
    switch.recover(build)  # what the next build (or a retry) does first
    assert _tags(build) == ({"new"} if marked or finished else {"old"})
    assert len([p for p in build.iterdir()]) == 4, sorted(p.name for p in build.iterdir())


def test_leftovers_of_an_interrupted_build_are_cleaned(tmp_path):
    build = tmp_path / "build"
    _make_set(build, "old")
    (build / switch.STAGING / "dataset").mkdir(parents=True)  # killed while staging: never marked complete
    (build / switch.RETIRED).mkdir()
    switch.recover(build)
    assert _tags(build) == {"old"} and sorted(p.name for p in build.iterdir()) == sorted(NAMES)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    root = tmp_path_factory.mktemp("outputs")
    path = write_recipe(root, name="outs", train=3)
    Builder(load_recipe(path), Reporter(quiet=True)).build()
    return root / "build"


def _copy(build: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(build, target)
    return target


def test_inspect_accepts_agreeing_outputs(cli, built):
    result = cli("inspect", str(built), "--n", "0")
    assert result.code == 0 and "expert" in result.out, result.err


def test_inspect_notices_parquet_with_other_rows(cli, built, tmp_path):
    copy = _copy(built, tmp_path)
    table = pq.read_table(copy / "parquet" / "expert.parquet")
    pq.write_table(table.slice(0, 2), copy / "parquet" / "expert.parquet")
    result = cli("inspect", str(copy), "--n", "0")
    assert result.code == 1 and len(result.err_lines) == 1, result.err
    assert "outputs disagree: expert: parquet/ has 2 rows, the card 3" in result.err


def test_inspect_notices_a_card_from_another_build(cli, built, tmp_path):
    copy = _copy(built, tmp_path)
    card = (copy / "README.md").read_text()
    (copy / "README.md").write_text(card.replace("| expert | 3 |", "| expert | 300 |"))
    result = cli("inspect", str(copy), "--n", "0")
    assert result.code == 1 and "dataset/ has 3 rows, the card 300" in result.err


def test_inspect_notices_rows_from_another_recipe(cli, built, tmp_path):
    copy = _copy(built, tmp_path)
    rows = pq.read_table(copy / "parquet" / "expert.parquet").to_pylist()
    for row in rows:
        row["provenance"]["recipe_hash"] = "0123456789abcdef"
    pq.write_table(pa.Table.from_pylist(rows), copy / "parquet" / "expert.parquet")
    result = cli("inspect", str(copy), "--n", "0")
    assert result.code == 1 and "built from recipe 0123456789abcdef" in result.err


def test_inspect_notices_an_interrupted_switch(cli, built, tmp_path):
    copy = _copy(built, tmp_path)
    staging = switch.staging_dir(copy)
    (staging / switch.COMPLETE).write_text("parquet")
    result = cli("inspect", str(copy), "--n", "0")
    assert result.code == 1 and "switch was interrupted" in result.err
