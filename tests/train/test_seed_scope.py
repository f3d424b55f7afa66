"""experiment.seed_scope: `methods` shares one warm-up and build across seeds; `all` gives each seed its own
recipe copy (its own warm-up key, rollout seeds, build directory and data fingerprint). No training here."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from steca_data.recipe.model import load_recipe
from steca_data.stages.agent import BaseAgentStage
from steca_train.experiment import results_path, seed_groups

TINY = Path(__file__).resolve().parents[2] / "recipes" / "experiment-tiny.yaml"


def _warmup_key(recipe) -> str:
    """The warm-up unit's key for ``recipe`` over a fixed set of expert trajectories."""
    ctx = SimpleNamespace(recipe=recipe, get=lambda _: SimpleNamespace(keys=["expert-a", "expert-b"]))
    return BaseAgentStage().warmup_key(ctx)


def test_seed_scope_all_gives_each_seed_its_own_warmup_and_build(tmp_path):
    recipe = load_recipe(TINY, [f"output.dir={tmp_path / 'b'}", "experiment.seeds=[0, 1]", "experiment.seed_scope=all"])
    (r0, s0), (r1, s1) = seed_groups(recipe)
    assert (s0, s1) == ([0], [1])
    assert _warmup_key(r0) != _warmup_key(r1)
    assert (r0.rollouts.seed, r1.rollouts.seed) == (0, 1) and r0.fingerprint() != r1.fingerprint()
    assert (r0.build_dir, r1.build_dir) == (tmp_path / "b" / "seed-0", tmp_path / "b" / "seed-1")
    assert r0.cache_path == tmp_path / "b" / "seed-0" / "cache.duckdb"
    assert r0.experiment == recipe.experiment and r0.env == recipe.env  # same tasks: paired across seeds

    cached = load_recipe(TINY, [f"output.dir={tmp_path / 'b'}", f"output.cache={tmp_path / 'c' / 'x.duckdb'}",
                                "experiment.seeds=[0, 1]", "experiment.seed_scope=all"])  # fmt: skip
    assert seed_groups(cached)[1][0].cache_path == tmp_path / "c" / "seed-1" / "x.duckdb"


def test_seed_scope_methods_shares_one_build(tmp_path):
    recipe = load_recipe(TINY, [f"output.dir={tmp_path / 'b'}", "experiment.seeds=[0, 1, 2]"])
    assert recipe.experiment.seed_scope == "methods"
    ((built, seeds),) = seed_groups(recipe)
    assert built is recipe and seeds == [0, 1, 2]


def test_results_path_defaults_beside_results_json_and_follows_experiment_results(tmp_path):
    recipe = load_recipe(TINY, [f"output.dir={tmp_path / 'b'}"])
    assert results_path(recipe) == tmp_path / "b" / "experiment" / "twc.json"
    moved = load_recipe(TINY, [f"output.dir={tmp_path / 'b'}", f"experiment.results={tmp_path / 'results'}"])
    assert results_path(moved) == tmp_path / "results" / "twc.json"


def test_earlier_time_counts_while_the_experiment_only_grows(tmp_path):
    """``minutes`` adds up over resumed runs: adding seeds, methods or the calibration analysis keeps every
    earlier unit, so its time still counts; a training setting or the seed scope starts the count again."""
    import json

    from steca_train.experiment import ELAPSED, _settings_key, earlier_seconds

    def recipe(*sets):
        return load_recipe(TINY, [f"output.dir={tmp_path / 'b'}", *sets])

    first = recipe("experiment.seeds=[0]", "experiment.calibration.enabled=false")
    (tmp_path / ELAPSED).write_text(json.dumps({"key": _settings_key(first), "seconds": 600.0}))
    grown = recipe("experiment.seeds=[0, 1, 2]", "experiment.calibration.enabled=true",
                   "experiment.methods=[sft, steca]", f"experiment.out={tmp_path / 'elsewhere'}")  # fmt: skip
    assert earlier_seconds(tmp_path, grown) == 600.0
    assert earlier_seconds(tmp_path, recipe("experiment.seeds=[0]", "reinforce.lr=5e-4")) == 0.0
    assert earlier_seconds(tmp_path, recipe("experiment.seeds=[0]", "experiment.seed_scope=all")) == 0.0
