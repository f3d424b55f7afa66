"""The STeCa engine end to end on the real TWX engine: Dc/De/Ds, incrementality, kill-and-resume.

The random policy makes these exact and fast (its actions depend only on each episode's seed); the
transformers path is exercised in test_engine_agent.py.
"""

from __future__ import annotations

import duckdb
import jsonschema
import pytest
from datasets import load_from_disk

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.core.schema_io import load_json_schema
from steca_data.recipe.model import load_recipe
from tests.conftest import count, run_cli, write_recipe

ENGINE = {
    "policy": {"backend": "random"},
    "rollouts": {"n": 4},
    "datasets": ["expert", "dc", "de", "ds"],
}


def _engine_recipe(directory, name="engine", train=6, **extra):
    return write_recipe(directory, name=name, train=train, **ENGINE, **extra)


@pytest.fixture(scope="module")
def engine_build(tmp_path_factory):
    path = _engine_recipe(tmp_path_factory.mktemp("engine"))
    recipe = load_recipe(path)
    summary = Builder(recipe, Reporter(quiet=True)).build()
    return path, recipe, summary


def test_builds_nonempty_schema_valid_dc_de_ds(engine_build):
    _, recipe, summary = engine_build
    assert summary.failed == 0
    dd = load_from_disk(str(recipe.build_dir / "dataset"))
    assert set(dd) == {"expert", "dc", "de", "ds"}
    for name in ("dc", "de", "ds"):
        assert len(dd[name]) > 0, name
        schema = load_json_schema(f"row_{name}")
        for row in dd[name]:
            jsonschema.validate(row, schema)
    for row in dd["dc"]:
        assert row["reward_weight"] >= 1.0 and 0.0 <= row["distance"] <= 1.0
        assistant = [m for m in row["messages"] if m["role"] == "assistant"]
        # the deviated action is context (no loss); the reflected step onwards bears the loss
        t = row["provenance"]["step"]
        assert [m["loss"] for m in assistant] == [False] * t + [True] * (len(assistant) - t)
        assert assistant[t - 1]["content"].endswith(f"Action: {row['deviated_action']}")
        assert assistant[t]["content"] == f"Thought: {row['reflection']}\nAction: {row['expert_action']}"
    assert all(r["reward_weight"] <= 1.0 for r in dd["de"])
    assert all(r["reward_weight"] >= 1.0 for r in dd["ds"])


def test_views_answer_questions(engine_build):
    _, recipe, _ = engine_build
    db = recipe.cache_path
    # every expert prefix got its n rollouts; the start state got them too (the explorations)
    assert count(db, "select count(*) from step_rewards where kind = 'expert' and n <> 4") == 0
    assert count(db, "select count(*) from expert_step_rewards where steps_remaining = 0 and reward = 1") == 6
    assert count(db, "select count(*) from calibrations") == count(db, "select count(*) from deviations where first")
    assert count(db, "select count(*) from reflections where status = 'ok'") >= 1


def test_rebuild_is_a_no_op(engine_build):
    path, recipe, first = engine_build
    again = Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert again.computed == 0 and again.cached == first.computed + first.cached
    assert not again.output.written


def test_delta_change_recomputes_no_rollout(engine_build):
    path, recipe, _ = engine_build
    db = recipe.cache_path
    rollouts = count(db, "select count(*) from rollouts")
    plans = {p.stage: p for p in Builder(load_recipe(path, ["deviation.delta=0.3"])).plan()}
    assert plans["rollouts"].to_compute == 0 and plans["proposals"].to_compute == 0
    before = {r["id"] for r in load_from_disk(str(recipe.build_dir / "dataset"))["dc"]}
    summary = Builder(load_recipe(path, ["deviation.delta=0.3", "reward.eta=1.0"]), Reporter(quiet=True)).build()
    by_stage = {r.stage: r for r in summary.results}
    assert by_stage["rollouts"].computed == 0 and by_stage["proposals"].computed == 0
    assert count(db, "select count(*) from rollouts") == rollouts
    after = load_from_disk(str(recipe.build_dir / "dataset"))["dc"]
    assert {r["id"] for r in after} != before, "a larger delta moves first deviations earlier"
    assert count(db, "select count(*) from deviations where delta = 0.3") > 0


def test_adding_tasks_computes_only_the_new_ones(engine_build):
    path, recipe, _ = engine_build
    plans = {p.stage: p for p in Builder(load_recipe(path, ["env.splits.train.count=7"])).plan()}
    assert plans["gold"].to_compute == 1
    assert plans["rollouts"].cached == count(recipe.cache_path, "select count(*) from rollouts")


def test_brief_template_reflections_rewrite_dc_alone(engine_build):
    """reflection.template: brief is an improvement attempt's knob: new reflections and Dc, no new rollout."""
    path, recipe, _ = engine_build
    overrides = ["reflection.template=brief"]
    plans = {p.stage: p for p in Builder(load_recipe(path, overrides)).plan()}
    assert plans["rollouts"].to_compute == 0 and plans["reflections"].to_compute == plans["reflections"].total > 0
    Builder(load_recipe(path, overrides), Reporter(quiet=True)).build()
    dc = load_from_disk(str(recipe.build_dir / "dataset"))["dc"]
    assert dc and all(r["reflection"].startswith("That did not help. ") for r in dc)
    assert {p.stage: p for p in Builder(load_recipe(path)).plan()}["reflections"].to_compute == 0  # both kept
    db = recipe.cache_path
    # the calibrations view shows the reflection the last build asked for, one row per first deviation
    firsts = count(db, "select count(*) from deviations where first")
    assert count(db, "select count(*) from calibrations") == firsts
    assert count(db, "select count(*) from calibrations where reflection like 'That did not help.%'") == firsts
    Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert count(db, "select count(*) from calibrations where reflection like 'Wait, %'") == firsts


def _rows_without_recipe_hash(build_dir, name):
    rows = load_from_disk(str(build_dir / "dataset"))[name].to_list()
    for row in rows:
        row["provenance"].pop("recipe_hash")
    return rows


def test_first_deviation_scope_gives_the_same_datasets_from_fewer_rollouts(tmp_path):
    full = load_recipe(_engine_recipe(tmp_path / "all"))
    lazy_sections = {**ENGINE, "rollouts": {"n": 4, "scope": "first_deviation"}}
    lazy_path = write_recipe(tmp_path / "lazy", name="engine", train=6, **lazy_sections)
    lazy = load_recipe(lazy_path)
    for recipe in (full, lazy):
        assert Builder(recipe, Reporter(quiet=True)).build().failed == 0
    for name in ("expert", "dc", "de", "ds"):
        assert _rows_without_recipe_hash(lazy.build_dir, name) == _rows_without_recipe_hash(full.build_dir, name)
    rollouts = "select count(*) from rollouts"
    assert 0 < count(lazy.cache_path, rollouts) < count(full.cache_path, rollouts)
    # later positions joined the running batch (follow-ups), not only the first differing proposal
    assert count(lazy.cache_path, "select count(distinct step) from rollouts where kind = 'proposal'") > 1
    # the same keys as scope: all, so a lazy build on top of a full cache computes nothing
    plans = {p.stage: p for p in Builder(load_recipe(lazy_path, [f"output.dir={full.build_dir}"])).plan()}
    assert plans["rollouts"].to_compute == 0
    # its step-reward curve comes from part of the expert prefixes, and the report says so
    report = run_cli("report", str(lazy.build_dir))
    assert report.returncode == 0 and "biased curve" in " ".join(report.stdout.split()), report.stderr


def test_kill_and_resume_gives_the_same_datasets(tmp_path):
    crashed, clean = _engine_recipe(tmp_path / "a", name="r"), _engine_recipe(tmp_path / "b", name="r")
    killed = run_cli("build", str(crashed), "--quiet", env={"STECA_DATA_KILL_AFTER_UNITS": "60"})
    assert killed.returncode == -9, killed.stderr
    db_a = tmp_path / "a" / "build" / "cache.duckdb"
    partial = count(db_a, "select count(*) from rollouts")
    assert partial > 0, "the kill should land inside the rollout stage"
    resumed = run_cli("build", str(crashed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{partial} cached" in resumed.stderr
    assert run_cli("build", str(clean), "--quiet").returncode == 0
    db_b = tmp_path / "b" / "build" / "cache.duckdb"
    same = "select count(*), count(distinct key), sum(outcome_reward) from rollouts"
    con_a, con_b = duckdb.connect(str(db_a), read_only=True), duckdb.connect(str(db_b), read_only=True)
    assert con_a.execute(same).fetchall() == con_b.execute(same).fetchall()
    con_a.close(), con_b.close()
    for name in ("expert", "dc", "de", "ds"):
        a = load_from_disk(str(tmp_path / "a" / "build" / "dataset"))[name].to_list()
        b = load_from_disk(str(tmp_path / "b" / "build" / "dataset"))[name].to_list()
        assert a == b, name


def test_report_writes_plots(engine_build):
    _, recipe, _ = engine_build
    proc = run_cli("report", str(recipe.build_dir))
    assert proc.returncode == 0, proc.stderr
    report = recipe.build_dir / "report"
    for name in ("step_reward_vs_remaining.png", "deviation_positions.png", "dataset_sizes.png"):
        assert (report / name).stat().st_size > 5000, name
    import json

    summary = json.loads((report / "summary.json").read_text())
    assert summary["step_reward_by_remaining"]["0"] == 1.0  # a complete expert prefix has won
    assert summary["dataset_sizes"]["expert"] == 6
    scored, listed = summary["expert_prefixes_scored"]
    assert scored == listed > 0 and "biased" not in proc.stdout  # scope: all scores every expert prefix


def test_bench_plays_the_same_rollouts_in_every_arm(tmp_path):
    import json

    path = _engine_recipe(tmp_path, name="bench")
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(path), "--tasks", "2", "--n", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    engine, lockstep, reference = figures["arms"]
    assert [a["schedule"] for a in figures["arms"]] == ["continuous", "lockstep", "lockstep"]
    assert engine["rollouts"] == lockstep["rollouts"] == 4
    assert figures["reference_every"] == 2 and reference["rollouts"] == 2, "one seed of every task by default"
    assert lockstep["identical"] == reference["identical"] == 1.0, "same seeds, same policy: the same rollouts"
    assert engine["steps"] == lockstep["steps"]
    ratio = float(proc.stdout.strip().splitlines()[-1].removeprefix("ratio: "))
    assert ratio == pytest.approx(figures["ratio"], abs=0.01) and ratio > 0


ROLLOUT_COLUMNS = (
    "key, score_key, task_id, kind, step, sample_index, seed, policy_id, prefix_len, num_steps, outcome_reward, "
    "success, actions, data"
)  # every column but created_at


def _rollout_rows(db) -> dict[str, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0]: r for r in con.execute(f"select {ROLLOUT_COLUMNS} from rollouts").fetchall()}
    finally:
        con.close()


def _verdicts(recipe) -> dict[tuple[str, int], bool]:
    from steca_data.build.builder import open_build
    from steca_data.stages.walks import engine_of

    with open_build(recipe, read_only=True) as ctx:
        return {(task, v.step): v.deviated for task, vs in engine_of(ctx).verdicts().items() for v in vs}


def test_adaptive_rollouts_are_a_prefix_of_the_fixed_n_build_and_agree_where_decided(tmp_path):
    fixed = load_recipe(write_recipe(tmp_path / "fixed", name="engine", train=6, **{**ENGINE, "rollouts": {"n": 5}}))
    sections = {**ENGINE, "rollouts": {"adaptive": {"n_min": 2, "n_max": 5, "confidence": 0.9}}}
    adaptive_path = write_recipe(tmp_path / "adaptive", name="engine", train=6, **sections)
    adaptive = load_recipe(adaptive_path)
    for recipe in (fixed, adaptive):
        assert Builder(recipe, Reporter(quiet=True)).build().failed == 0
    fixed_rows, adaptive_rows = _rollout_rows(fixed.cache_path), _rollout_rows(adaptive.cache_path)
    # the same keys, seeds and episodes: sample i of a prefix is the fixed build's sample i, byte for byte
    assert adaptive_rows and all(fixed_rows.get(k) == row for k, row in adaptive_rows.items())
    assert len(adaptive_rows) < len(fixed_rows)
    per_prefix: dict[str, list[int]] = {}
    for row in adaptive_rows.values():
        per_prefix.setdefault(row[1], []).append(row[5])
    assert all(sorted(s) == list(range(len(s))) for s in per_prefix.values()), "one more per round, no gap"
    assert {len(s) for s in per_prefix.values()} > {2, 5}, "some verdicts stopped early, some needed all five"

    by_fixed, by_adaptive = _verdicts(fixed), _verdicts(adaptive)
    assert by_fixed.keys() == by_adaptive.keys() and len(by_fixed) > 5
    assert sum(by_fixed[k] == by_adaptive[k] for k in by_fixed) >= 0.8 * len(by_fixed)

    # one cache for both: over the fixed build's cache the adaptive recipe computes nothing and reaches the same
    # verdicts (it replays its stopping rule over the stored rewards, ignoring samples beyond each stop) ...
    over = load_recipe(adaptive_path, [f"output.dir={fixed.build_dir}"])
    assert {p.stage: p for p in Builder(over).plan()}["rollouts"].to_compute == 0
    assert _verdicts(over) == by_adaptive
    # ... and where only curtailment stops it (no rollout to come could change the verdict), it is exact
    sure = load_recipe(adaptive_path, [f"output.dir={fixed.build_dir}", "rollouts.adaptive.confidence=0.999999"])
    assert _verdicts(sure) == by_fixed
