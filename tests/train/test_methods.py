"""Every training method from one build: recipes/experiment-tiny.yaml shrunk to seconds (the test's own variant)
runs all of them — a results row per method, IPR's (and ETO's) second round explored by the first round's policy
in the build's one cache. The registry and the CLI's refusals: tests/hardening/test_methods_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import count

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "experiment-tiny.yaml"


def _shrunk(build: Path) -> list[str]:
    """experiment-tiny.yaml at test size: 16 expert tasks, 3 walked, 1 eval task per split, 2 steps per run."""
    return [
        f"output.dir={build}",
        "env.max_steps=8",
        "env.splits.train.count=16",
        "env.splits.seen.count=2",
        "env.splits.unseen.count=2",
        "env.params.numItemsToPutAway=1",
        "sft.max_steps=40",
        "rollouts.tasks=3",
        "rollouts.n=1",
        "rollouts.max_steps=6",
        "rollouts.explorations=2",
        "deviation.delta=1.0",  # every proposal that differs from the expert is deviated: Dc is never empty
        "eval.limit=1",
        "reinforce.max_steps=2",
        "reinforce.dpo.max_steps=2",
        "reinforce.dpo.batch_size=2",
        "experiment.calibration.enabled=false",
    ]


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe
    from steca_train.experiment import run_experiment

    recipe = load_recipe(TINY, _shrunk(tmp_path_factory.mktemp("tiny") / "build"))
    return recipe, run_experiment(recipe, Reporter(quiet=True))


def test_tiny_experiment_has_a_result_row_per_method(tiny_experiment):
    recipe, doc = tiny_experiment
    saved = json.loads((recipe.build_dir / "experiment" / "results.json").read_text())
    methods = ["sft", "rft", "steca-sft", "steca-dpo", "steca", "ipr", "eto", "step"]
    assert saved["methods"] == methods
    for name in methods:
        rows = [r for r in saved["table"] if r["method"] == name]
        assert {r["split"] for r in rows} == {"seen", "unseen"}, name
    trained = {run["method"]: run["train"] for run in saved["runs"]}
    assert trained["sft"] is None and all(trained[m] for m in methods[1:])
    assert set(trained["step"]["weights"]) == {"expert", "step"}  # self-reflected trajectories mixed with experts
    assert trained["step"]["weights"]["step"]["max"] == 1.0  # STeP weighs every row alike
    assert "IPR" in (recipe.build_dir / "experiment" / "results.md").read_text()


def test_tiny_experiment_writes_per_task_outcomes_and_the_headline_table(tiny_experiment):
    recipe, doc = tiny_experiment
    for run in doc["runs"]:
        for res in run["results"]:  # each eval task's success and final reward, for the paired comparison
            (outcome,) = res["tasks"].values()  # eval.limit=1
            assert set(outcome) == {"success", "reward"} and outcome["success"] == res["success_rate"]
    headline = json.loads((recipe.build_dir / "experiment" / "twc.json").read_text())
    assert headline == doc["headline"]
    assert headline["env"] == "twc" and headline["seeds"] == [0] and headline["n_eval"] == {"seen": 1, "unseen": 1}
    assert list(headline["methods"]) == doc["methods"]
    assert {f"steca_vs_{m}_unseen_success" for m in doc["methods"] if m != "steca"} == set(headline["paired"])
    assert headline["data"] == {name: doc["datasets"].get(name, {"rows": 0})["rows"] for name in ("dc", "de", "ds")}
    assert headline["data"]["dc"] > 0 and headline["minutes"] > 0


def test_ipr_second_round_is_explored_by_the_first_rounds_policy(tiny_experiment):
    recipe, doc = tiny_experiment
    (ipr,) = [run["train"] for run in doc["runs"] if run["method"] == "ipr"]
    first, second = ipr["rounds"][:2]
    assert first["explored_by"] == doc["base_policy_id"]
    assert second["explored_by"] == first["model"] != doc["base_policy_id"]
    for table in ("proposals", "rollouts", "scored_prefixes"):
        made = count(recipe.cache_path, f"select count(*) from {table} where policy_id = '{first['model']}'")
        assert made > 0, table  # round 2's units, by the round-1 policy, in the build's one cache
    (model,) = [Path(run["model"]) for run in doc["runs"] if run["method"] == "ipr"]
    curve = json.loads((model / "train_log.json").read_text())["history"]
    assert {h["round"] for h in curve} == {1, 2}  # the report's training curve spans both rounds
    (eto,) = [run["train"] for run in doc["runs"] if run["method"] == "eto"]
    assert eto["rounds"][1]["explored_by"] == eto["rounds"][0]["model"]
