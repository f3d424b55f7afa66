"""The engine with a real (tiny) transformer base agent: the warm-up stage and model-driven rollouts."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.recipe.model import load_recipe
from tests.conftest import write_recipe

AGENT = {
    "env": {"max_steps": 8},
    "prompt": {"include_example": False, "history": 2},
    "model": {
        "vocab_size": 400,
        "hidden_size": 32,
        "num_layers": 1,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_positions": 768,
    },
    "sft": {"max_steps": 4, "lr": 5.0e-3, "warmup_steps": 1, "batch_tokens": 2048, "threads": 1},
    "policy": {"backend": "transformers", "constrained": True, "max_new_tokens": 24, "batch_size": 16, "threads": 1},
    "rollouts": {"n": 2, "tasks": 2, "max_steps": 6},
    "datasets": ["expert", "dc", "de", "ds"],
}


def test_warmup_trains_once_and_drives_rollouts(tmp_path):
    path = write_recipe(tmp_path, name="warm", train=4, **AGENT)
    summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
    stages = {r.stage: r for r in summary.results}
    assert stages["base_agent"].computed == 1 and stages["rollouts"].computed > 0
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    ((kind, model_dir, data),) = con.execute("select kind, path, data from artifacts").fetchall()
    info = json.loads(data)
    # stored relative to the build directory (the cache's folder), so a moved build still finds it
    assert kind == "warmup" and Path(model_dir).parts[0] == "models" and (tmp_path / "build" / model_dir).is_dir()
    assert info["policy_id"].startswith("hf:sft:") and info["steps"] == 4
    ids = {r[0] for r in con.execute("select distinct policy_id from rollouts").fetchall()}
    constrained = con.execute("select bool_and((data->>'constrained_actions')::bool) from rollouts").fetchone()[0]
    con.close()
    assert ids == {info["policy_id"]} and constrained

    again = Builder(load_recipe(path), Reporter(quiet=True)).build()
    assert again.computed == 0, "a rebuild neither retrains the base agent nor plays a rollout"

    # a different SFT setting is a different base agent: everything downstream is recomputed under it
    plans = {p.stage: p for p in Builder(load_recipe(path, ["sft.max_steps=5"])).plan()}
    assert plans["base_agent"].to_compute == 1 and plans["proposals"].note == "after the warm-up"
