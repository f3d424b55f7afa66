"""A build directory is self-contained: moved elsewhere, without the recipe's input files (an imported ShareGPT
file, an ALFWorld game tree), and read from another working directory, it still exports, inspects and reports,
and ``steca-train`` still finds the warm-up model the build made (issues 21 and 23)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.recipe.model import load_recipe
from tests.conftest import count, write_recipe

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sharegpt_alfworld.json"


def _move(build: Path, to: Path) -> Path:
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(build), str(to))
    return to


def _reads(cli, build: Path, out: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """export (each format), inspect and report all succeed on ``build``; returns the export folders."""
    exported = {}
    for fmt in formats:
        got = cli("export", build, "--format", fmt, "--out", out / fmt)
        assert got.code == 0, (fmt, got.err)
        exported[fmt] = out / fmt
    inspected = cli("inspect", build)
    assert inspected.code == 0, inspected.err
    reported = cli("report", build, "--out", out / "report")
    assert reported.code == 0, reported.err
    assert (out / "report" / "dataset_sizes.png").is_file()
    return exported


def test_imported_sharegpt_fixture_build_reads_without_its_file(cli, tmp_path):
    """tests/fixtures/sharegpt_alfworld.json imported as it is (expert rows), the file gone, the build moved."""
    source = tmp_path / "src"
    (source / "experts.json").parent.mkdir(parents=True)
    (source / "experts.json").write_text(FIXTURE.read_text())
    recipe = load_recipe(write_recipe(source, name="imported", experts={"source": "sharegpt", "path": "experts.json"}))
    Builder(recipe, Reporter(quiet=True)).build()
    shutil.rmtree(source / "build" / "models", ignore_errors=True)
    moved = _move(recipe.build_dir, tmp_path / "elsewhere" / "copy")
    shutil.rmtree(source)
    exported = _reads(cli, moved, tmp_path / "out", ("trl-sft", "sharegpt"))
    experts = json.loads((exported["sharegpt"] / "expert.json").read_text())
    assert len(experts) == 2


@pytest.fixture(scope="module")
def alfworld_import(tmp_path_factory):
    """An official-layout ALFWorld tree and a ShareGPT file naming its games (the issue's failing case)."""
    pytest.importorskip("alfworld")
    pytest.importorskip("fast_downward")
    from steca_data.envs.alfworld.generate import generate
    from tests.importers.test_replay import sharegpt_record

    root = tmp_path_factory.mktemp("alfworld-import")
    tree = root / "tree"
    assert not generate(tree / "json_2.1.1", seed=11, games={"train": 2, "valid_seen": 1, "valid_unseen": 1},
                        size="small").failed()  # fmt: skip
    games = sorted(
        p.parent.relative_to(tree / "json_2.1.1").as_posix() for p in tree.glob("json_2.1.1/train/*/*/game.tw-pddl")
    )
    experts = root / "experts.json"
    experts.write_text(json.dumps([sharegpt_record(tree, g, "json_2.1.1/") for g in games]))
    return tree, experts


def test_imported_alfworld_engine_build_exports_after_a_move(cli, tmp_path, alfworld_import, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    tree, experts = alfworld_import
    recipe_path = _imported_recipe(tmp_path / "src", tree, experts)
    recipe = load_recipe(recipe_path)
    Builder(recipe, Reporter(quiet=True)).build()
    moved = _move(recipe.build_dir, tmp_path / "elsewhere" / "copy")
    experts.rename(experts.with_suffix(".gone"))  # neither the import file nor the game tree is there
    tree.rename(tree.with_name("tree.gone"))
    try:
        exported = _reads(cli, moved, tmp_path / "out", ("trl-dpo", "sharegpt", "step"))
    finally:
        experts.with_suffix(".gone").rename(experts)
        tree.with_name("tree.gone").rename(tree)
    pairs = load_from_disk(str(exported["trl-dpo"] / "dataset"))["train"]
    assert len(pairs) > 0 and {"ipr", "eto"} & set(pairs["kind"])


def test_imported_alfworld_build_moved_explores_a_round_without_its_file(tmp_path, alfworld_import, monkeypatch):
    """Issue 23: IPR / ETO's later rounds on a moved build whose experts were imported: the round walks the
    experts from the build's cache (``build.json``), not from the ShareGPT file, which is gone."""
    from steca_data.export.build_dir import BuildDir
    from steca_train.methods.base import MethodRun
    from steca_train.methods.rounds import explore

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    tree, experts = alfworld_import
    recipe = load_recipe(_imported_recipe(tmp_path / "src", tree, experts))
    Builder(recipe, Reporter(quiet=True)).build()
    moved = _move(recipe.build_dir, tmp_path / "elsewhere" / "copy")
    build = BuildDir.open(moved)
    base_experts = sorted(r["id"] for r in build.rows["expert"])
    # the round's policy differs from the base build's (as a trained model would): 2 rollouts per prefix, not 1
    live = build.recipe.model_copy(update={"rollouts": build.recipe.rollouts.model_copy(update={"n": 2})})
    run = MethodRun(recipe=live, build=build, init=moved, base=moved, out=tmp_path / "m", scratch=tmp_path / "s",
                    seed=0, reporter=Reporter(quiet=True), options=None)  # fmt: skip
    before = count(moved / "cache.duckdb", "select count(*) from rollouts")
    build.close()
    experts.rename(experts.with_suffix(".gone"))
    try:
        explored = explore(run, moved, 2)
    finally:
        experts.with_suffix(".gone").rename(experts)
    assert sorted(r["id"] for r in explored.rows["expert"]) == base_experts
    assert explored.rows["de"] or explored.rows["ds"]
    explored.close()
    assert count(moved / "cache.duckdb", "select count(*) from rollouts") > before  # the round computed


IMPORTED = {
    "name": "replayed",
    "env": {"name": "alfworld", "game": "all", "max_steps": 12, "workers": 1,
            "splits": {"train": {"fold": "train", "count": 2}, "seen": {"fold": "valid_seen", "count": 1},
                       "unseen": {"fold": "valid_unseen", "count": 1}}},
    "prompt": {"include_example": False, "history": 2},
    "policy": {"backend": "random"},
    "rollouts": {"n": 1, "max_steps": 3},
    "deviation": {"delta": 0.5},
    "reward": {"eta": 0.01, "distance": "exact"},
    "datasets": ["expert", "dc", "de", "ds"],
}  # fmt: skip


def _imported_recipe(folder: Path, tree: Path, experts: Path) -> Path:
    folder.mkdir(parents=True)
    path = folder / "replayed.yaml"
    path.write_text(yaml.safe_dump({**IMPORTED, "env": {**IMPORTED["env"], "data_dir": str(tree)},
                                    "experts": {"source": "sharegpt", "path": str(experts)},
                                    "output": {"dir": str(folder / "build")}}))  # fmt: skip
    return path


WARMUP = {
    "model": {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
              "max_positions": 768},
    "sft": {"max_steps": 2, "batch_tokens": 1024, "threads": 1, "save_every": 1000},
    "policy": {"backend": "transformers", "constrained": True, "max_new_tokens": 24, "threads": 1},
    "rollouts": {"n": 1, "tasks": 2, "max_steps": 4},
    "deviation": {"delta": 1.0},
    "datasets": ["expert", "dc", "de", "ds"],
    "reinforce": {"max_steps": 1, "batch_tokens": 1024, "threads": 1},
}  # fmt: skip


def test_warmup_build_moved_and_read_from_another_directory(cli, tmp_path, monkeypatch):
    """Issue 21's case: a build made with a relative output.dir, then moved and read from elsewhere: the warm-up
    model is found (export's engine view, reinforce's base agent), not 'not in the cache'."""
    source = tmp_path / "src"
    path = write_recipe(source, name="warm", train=4, output={"dir": "build"}, env={"max_steps": 6}, **WARMUP)
    monkeypatch.chdir(source)
    recipe = load_recipe(path)
    Builder(recipe, Reporter(quiet=True)).build()
    moved = _move(source / "build", tmp_path / "elsewhere" / "warm")
    shutil.rmtree(source)
    monkeypatch.chdir(tmp_path)
    manifest = json.loads((moved / "build.json").read_text())
    assert not Path(manifest["agent"]["model"]).is_absolute()  # inside the build, named relative to it
    _reads(cli, moved, tmp_path / "out", ("trl-dpo",))
    trained = cli("reinforce", "--data", moved, "--method", "steca-sft", "--out", tmp_path / "m", "-q", tool="train")
    assert trained.code == 0, trained.err
    assert (tmp_path / "m" / "config.json").is_file()
