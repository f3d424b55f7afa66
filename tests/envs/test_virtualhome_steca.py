"""STeCa's own VirtualHome test files (seen / unseen, 247 rows each) on the real evolving-graph simulator.

Fast: a few of the 54 rows that virtualhome-eval's dataset can run; the replay of all of them is a measurement
(``python -m steca_data.envs.virtualhome.steca_check``), not a test.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("virtualhome_eval")

from steca_data.core.errors import RecipeError  # noqa: E402
from steca_data.envs.virtualhome.backend import VirtualHomeBackend, list_tasks, steca_row_of, task_notes  # noqa: E402
from steca_data.envs.virtualhome.spec import VirtualHomeSpec  # noqa: E402
from steca_data.envs.virtualhome.splits import FOLD_SIZES, fold_sizes, fold_tasks, steca_tested_ids  # noqa: E402
from steca_data.envs.virtualhome.steca_check import replay, spec_for  # noqa: E402
from steca_data.envs.virtualhome.steca_tests import (  # noqa: E402
    EMPTY_GOAL,
    NO_GRAPH,
    ROWS,
    SHA256,
    SHIPPED,
    dataset_root,
    file_digest,
    graph_file,
    load_rows,
)
from steca_data.recipe.model import load_recipe  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "virtualhome-steca-test.yaml"
# runnable rows with virtualhome-eval 0.1.1's dataset (scene 1, results_intentions_march-13-18 only)
RUNNABLE = {"steca_seen": 24, "steca_unseen": 30}


def steca_check_env(state: dict, revised: dict) -> bool:
    """STeCa's success rule, written here from its description against ``to_dict()`` (the slow, plain form): every
    field of each listed node equals the state's (lists as sets), listed removed edges are absent, added present."""
    nodes = {n["id"]: n for n in state["nodes"]}
    edges = {(e["from_id"], e["relation_type"], e["to_id"]) for e in state["edges"]}
    for node in revised["nodes"]:
        have = nodes.get(node["id"])
        if have is None:
            return False
        for key, value in node.items():
            if (set(value) != set(have[key])) if isinstance(value, list) else value != have[key]:
                return False
    gone = all((e["from_id"], e["relation_type"], e["to_id"]) not in edges for e in revised["revised_nodes"])
    added = all((e["from_id"], e["relation_type"], e["to_id"]) in edges for e in revised["revised_add_edges"])
    return gone and added


def test_shipped_files_are_the_published_ones_and_rows_stay_apart():
    for fold, name in (("steca_seen", "vh_seen_test.jsonl"), ("steca_unseen", "vh_unseen_test.jsonl")):
        assert file_digest(fold, None) == SHA256[name]
        rows = load_rows(fold)
        assert len(rows) == ROWS == FOLD_SIZES[fold] == fold_sizes()[fold]
        assert [r.row for r in rows] == list(range(ROWS))
        assert len({r.key for r in rows}) == ROWS  # row position + id: unique even where ids repeat
    ids = [r.steca_id for r in load_rows("steca_seen")]
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == ["3", "453"]
    ids = [r.steca_id for r in load_rows("steca_unseen")]
    assert [i for i in set(ids) if ids.count(i) > 1] == ["57"]


def test_runnable_counts_and_reasons_with_the_shipped_dataset():
    spec = spec_for("steca")
    for fold, n in RUNNABLE.items():
        notes = task_notes(spec, fold)
        assert (notes["listed"], notes["runnable"]) == (ROWS, n)
        assert notes["not_runnable"] == {NO_GRAPH: ROWS - n}
        assert notes["success_rule"] == "steca" and "b2cc515" in notes["source"]
        assert f"{n} of {ROWS}" in notes["summary"]
        tasks = list_tasks(spec, fold)
        assert len(tasks) == n and len({t.task_id for t in tasks}) == n
        assert all(t.task_id.endswith("/steca") and t.unseen == (fold == "steca_unseen") for t in tasks)
    # the goal rule has nothing to check on some rows: they are reported, not listed
    goal = spec_for("goal")
    assert {f: task_notes(goal, f)["not_runnable"].get(EMPTY_GOAL) for f in RUNNABLE} == {
        "steca_seen": 7,
        "steca_unseen": 4,
    }
    # a block of the file: only its rows count
    block = VirtualHomeSpec(
        splits={"train": {"fold": "train_steca", "count": 1}, "seen": {"fold": "steca_seen", "start": 10, "count": 20}}
    )
    assert task_notes(block, "seen")["listed"] == 20
    assert all(10 <= steca_row_of(t, block)[0].row < 30 for t in list_tasks(block, "seen"))


def test_gold_programs_meet_stecas_rule_and_the_rule_matches_its_check():
    spec = spec_for("steca")
    backend = VirtualHomeBackend(spec)
    for fold in RUNNABLE:
        tasks = list_tasks(spec, fold)[:3]
        result = replay(spec, fold, tasks)
        assert (result.runnable, result.succeeded) == (3, 3), result.failed
        for task in tasks[:2]:
            row, _ = steca_row_of(task, spec)
            session = backend.new_session(with_admissible=False)
            first = session.reset(task)
            assert not first.success and first.score == 0.0
            assert session.instruction() == f"The task is {row.program.title}({row.program.description.rstrip('.')})."
            episode = session._episode
            for action in (*row.actions, "walk to bathroom", "sleep"):
                step = session.step(action)
                assert step.success == steca_check_env(episode.state.to_dict(), row.revised), (task.task_id, action)
                assert step.score == float(step.success)  # STeCa's rule scores 0 or 1
    backend.close()


def test_names_start_bound_to_the_rows_objects_and_replays_are_identical():
    spec = spec_for("steca")
    task = list_tasks(spec, "steca_unseen")[0]
    row, _ = steca_row_of(task, spec)
    backend = VirtualHomeBackend(spec)
    session = backend.new_session(with_admissible=False)
    session.reset(task)
    bound = session._episode.bound
    assert bound and all(row.object_ids[name] == node for name, node in bound.items())
    runs = []
    for _ in range(2):
        a = backend.new_session()
        runs.append([a.reset(task).observation] + [(s.observation, s.admissible) for s in map(a.step, row.actions)])
    assert runs[0] == runs[1]
    assert backend.gold_actions(session, task) == list(row.actions[: len(backend.gold_actions(session, task))])


def test_own_copies_of_the_files_and_of_the_dataset(tmp_path):
    """``steca_dir`` reads plain .jsonl; ``dataset_dir`` may be the programs folder or its parent."""
    rows = gzip.decompress((SHIPPED / "vh_seen_test.jsonl.gz").read_bytes()).decode().splitlines()
    runnable = [r.row for r in load_rows("steca_seen") if graph_file(dataset_root(None), r).is_file()][:2]
    (tmp_path / "steca").mkdir()
    (tmp_path / "steca" / "vh_seen_test.jsonl").write_text("\n".join(rows[i] for i in [0, *runnable]) + "\n")
    shutil.copy(SHIPPED / "vh_unseen_test.jsonl.gz", tmp_path / "steca")
    dataset = tmp_path / "vh" / "programs_processed_precond_nograb_morepreconds"
    only = load_rows("steca_seen")[runnable[0]]
    target = graph_file(dataset, only)
    target.parent.mkdir(parents=True)
    shutil.copy(graph_file(dataset_root(None), only), target)
    spec = VirtualHomeSpec(
        splits={"train": {"fold": "train_steca", "count": 1}, "seen": {"fold": "steca_seen", "count": 3}},
        success="steca",
        steca_dir=str(tmp_path / "steca"),
        dataset_dir=str(tmp_path / "vh"),
    )
    notes = task_notes(spec, "seen")
    assert (notes["listed"], notes["runnable"], notes["not_runnable"]) == (3, 1, {NO_GRAPH: 2})
    (task,) = list_tasks(spec, "seen")
    assert replay(spec, "seen", [task]).succeeded == 1
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.read_text())
    with pytest.raises(RecipeError, match=r"env.dataset_dir: no folder at .*nowhere"):
        load_recipe(recipe, ["env.dataset_dir=nowhere"])
    with pytest.raises(RecipeError, match=r"env.steca_dir: no vh_seen_test.jsonl"):
        load_recipe(recipe, [f"env.steca_dir={tmp_path}"])
    loaded = load_recipe(recipe, [f"env.steca_dir={tmp_path / 'steca'}", "env.splits.seen.count=3"])
    assert loaded.env.steca_dir == str(tmp_path / "steca")


def test_recipe_fields_are_checked_before_any_work():
    def spec(**kw):
        return VirtualHomeSpec(**{"splits": {"train": {"fold": "train", "count": 1}}, **kw})

    with pytest.raises(ValueError, match="success: 'steca' needs STeCa's test files"):
        spec(success="steca")
    with pytest.raises(ValueError, match="'train' and 'train_steca' share tasks"):
        spec(splits={"train": {"fold": "train", "count": 1}, "t2": {"fold": "train_steca", "start": 5, "count": 1}})
    with pytest.raises(ValueError, match="exceeds the 247 tasks of fold 'steca_seen'"):
        spec(splits={"train": {"fold": "train", "count": 1}, "seen": {"fold": "steca_seen", "count": 248}})
    # the new fields stay out of a recipe's dump at their defaults: older recipes keep their fingerprint
    assert {"success", "dataset_dir", "steca_dir"}.isdisjoint(spec().model_dump())
    assert spec(success="goal", dataset_dir="x").model_dump()["dataset_dir"] == "x"


def test_train_steca_holds_no_task_of_stecas_files():
    tested = steca_tested_ids()
    assert len(tested) > 30
    train = {file_id for file_id, _ in fold_tasks("train")}
    kept = [file_id for file_id, _ in fold_tasks("train_steca")]
    assert not set(kept) & tested and set(kept) == train - tested and len(kept) == FOLD_SIZES["train_steca"]


def test_plan_says_how_many_rows_run(tmp_path):
    proc = run_cli("plan", str(RECIPE), "--set", f"output.dir={tmp_path / 'b'}")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "seen: 24 of 247 STeCa seen tasks runnable; 223 without an initial graph" in text
    assert "unseen: 30 of 247 STeCa unseen tasks runnable; 217 without an initial graph" in text
    assert "success rule 'steca'" in text
    bad = run_cli("plan", str(REPO / "recipes" / "virtualhome.yaml"), "--set", "env.success=steca")
    assert bad.returncode == 2 and "env.success" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_shipped_rows_parse_into_programs():
    row = load_rows("steca_seen")[0]
    assert row.program.title == "Get dressed" and row.relpath.startswith("TrimmedTestScene2_graph/")
    assert [s.script_line() for s in row.program.steps][:2] == ["[WALK] <bedroom> (162)", "[WALK] <dresser> (1000)"]
    assert json.loads(gzip.decompress((SHIPPED / "vh_seen_test.jsonl.gz").read_bytes()).splitlines()[0])["id"] == "132"
