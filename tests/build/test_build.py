"""End-to-end builds of small recipes: cache hits, kill-and-resume, dataset validity, CLI queries."""

from __future__ import annotations

import json

import duckdb
import jsonschema
import pytest
from datasets import load_from_disk

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.core.schema_io import load_json_schema
from steca_data.recipe.model import load_recipe
from tests.conftest import run_cli


def _counts(db) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("gold_paths", "trajectories", "steps", "failures")
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tests.conftest import write_recipe

    path = write_recipe(tmp_path_factory.mktemp("build"), train=16)
    recipe = load_recipe(path)
    summary = Builder(recipe, Reporter(quiet=True)).build()
    return path, recipe, summary


def test_first_build_computes_everything(built):
    _, recipe, summary = built
    assert summary.computed == 32 and summary.cached == 0 and summary.failed == 0
    assert _counts(recipe.cache_path)["trajectories"] == 16


def test_rebuild_is_a_no_op(built):
    path, recipe, _ = built
    before = (recipe.build_dir / "dataset" / "expert").stat().st_mtime_ns
    summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert summary.computed == 0 and summary.cached == 32
    assert not summary.output.written
    assert (recipe.build_dir / "dataset" / "expert").stat().st_mtime_ns == before
    proc = run_cli("build", str(path), "--quiet")
    assert proc.returncode == 0 and "Nothing to do" in proc.stderr


def test_plan_reports_cached_and_new_units(built):
    path, recipe, _ = built
    plans = {p.stage: p for p in Builder(load_recipe(path, ["env.splits.train.count=20"])).plan()}
    assert (plans["gold"].total, plans["gold"].cached) == (20, 16)
    assert (plans["expert"].total, plans["expert"].cached) == (20, 16)
    proc = run_cli("plan", str(path))
    assert proc.returncode == 0 and "gold" in proc.stdout and "16" in proc.stdout


def test_every_row_validates_against_its_json_schema(built):
    _, recipe, _ = built
    dd = load_from_disk(str(recipe.build_dir / "dataset"))
    assert list(dd) == ["expert"] and len(dd["expert"]) == 16
    schema = load_json_schema("row_expert")
    for row in dd["expert"]:
        jsonschema.validate(row, schema)
        assert row["messages"][0]["role"] == "system"
        assert all(m["loss"] == (m["role"] == "assistant") for m in row["messages"])
    card = (recipe.build_dir / "README.md").read_text()
    assert "| expert | 16 |" in card and "textworld-express" in card
    assert (recipe.build_dir / "parquet" / "expert.parquet").is_file()


def test_sql_and_inspect_cli(built):
    _, recipe, _ = built
    proc = run_cli(
        "sql",
        "select source, count(*) as n from trajectories group by 1",
        "--db",
        str(recipe.cache_path),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"source": "expert", "n": 16}]
    proc = run_cli("sql", "select count(*) as n from steps", "--db", str(recipe.cache_path), "--format", "csv")
    assert proc.stdout.splitlines()[0] == "n" and int(proc.stdout.splitlines()[1]) > 16
    bad = run_cli("sql", "select nope from nowhere", "--db", str(recipe.cache_path))
    assert bad.returncode == 1 and "nowhere" in bad.stderr and "Traceback" not in bad.stderr
    proc = run_cli("inspect", str(recipe.build_dir))
    assert proc.returncode == 0 and "expert" in proc.stdout and "Action:" in proc.stdout


def test_sql_defaults_to_newest_build_in_cwd(built, tmp_path):
    _, recipe, _ = built
    (tmp_path / "builds" / "x").mkdir(parents=True)
    (tmp_path / "builds" / "x" / "cache.duckdb").symlink_to(recipe.cache_path)
    proc = run_cli("sql", "select count(*) as n from trajectories", "--format", "csv", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines()[1] == "16"


def test_push_without_token_fails_clearly_and_keeps_the_build(built):
    path, recipe, _ = built
    env = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "", "HF_HOME": str(recipe.build_dir / "no-hf-home")}
    proc = run_cli("build", str(path), "--quiet", "--push-to-hub", "someone/steca-test", env=env)
    assert proc.returncode == 1
    assert "no Hugging Face token" in proc.stderr and "HF_TOKEN" in proc.stderr
    assert (recipe.build_dir / "dataset" / "dataset_dict.json").is_file()


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    from tests.conftest import write_recipe

    crashed = write_recipe(tmp_path / "a", name="resume", train=14)
    clean = write_recipe(tmp_path / "b", name="resume", train=14)
    proc = run_cli("build", str(crashed), "--quiet", env={"STECA_DATA_KILL_AFTER_UNITS": "9"})
    assert proc.returncode == -9, proc.stderr  # SIGKILL: no cleanup ran
    after_kill = _counts(tmp_path / "a" / "build" / "cache.duckdb")
    assert after_kill["gold_paths"] == 9 and after_kill["trajectories"] == 0

    resumed = run_cli("build", str(crashed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "gold: 5 computed, 9 cached" in resumed.stderr
    assert run_cli("build", str(clean), "--quiet").returncode == 0

    a, b = _counts(tmp_path / "a" / "build" / "cache.duckdb"), _counts(tmp_path / "b" / "build" / "cache.duckdb")
    assert a == b and a["gold_paths"] == 14 and a["trajectories"] == 14
    da = load_from_disk(str(tmp_path / "a" / "build" / "dataset"))["expert"].to_list()
    db = load_from_disk(str(tmp_path / "b" / "build" / "dataset"))["expert"].to_list()
    assert da == db


def test_environment_failures_are_recorded_not_fatal(tmp_path):
    from steca_data.cache.store import Cache
    from steca_data.core.schemas import Task
    from steca_data.stages.base import BuildContext
    from steca_data.stages.experts import ExpertStage, GoldStage
    from tests.conftest import write_recipe

    recipe = load_recipe(write_recipe(tmp_path, train=3))
    # A task the engine cannot play (a parameter its generator rejects) among good ones.
    broken = Task(
        task_id="twx/twc/numLocations=9/train/5",
        env="textworld_express",
        game="twc",
        params="numLocations=9",
        seed=5,
        fold="train",
        split="train",
        unseen=False,
    )
    with Cache(recipe.cache_path) as cache:
        ctx = BuildContext(recipe, cache, Reporter(quiet=True))
        ctx.tasks = {**ctx.tasks, "train": [*ctx.tasks["train"], broken]}
        try:
            gold = GoldStage().run(ctx)
            expert = ExpertStage().run(ctx)
            again = GoldStage().plan(ctx)
        finally:
            ctx.close()
        ((task_id, error),) = cache.sql("select task_id, error from failures").fetchall()
    assert (gold.computed, gold.failed, expert.computed) == (3, 1, 3)
    assert (again.to_compute, again.failed) == (1, 1), "a recorded failure is retried by the next build"
    assert "1 failed last time, will retry" in again.note
    assert task_id == broken.task_id and "numLocations" in error
    final = load_recipe(write_recipe(tmp_path, train=3, failures={"retry": False}))
    with Cache(final.cache_path) as cache:
        ctx = BuildContext(final, cache, Reporter(quiet=True))
        ctx.tasks = {**ctx.tasks, "train": [*ctx.tasks["train"], broken]}
        kept = GoldStage().plan(ctx)
    assert (kept.to_compute, kept.failed) == (0, 1), "failures.retry: false makes a failure final"
