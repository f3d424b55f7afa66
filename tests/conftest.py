"""Shared fixtures. Everything is real (TWX JVM, DuckDB files, tokenizer and model training) but sized to
run in seconds; torch uses one thread, as the NOTES advise on this 2-core machine.

- ``write_recipe`` / ``recipe_factory``: small TWX recipes in tmp dirs, built by the tests themselves;
- session-scoped: one tiny TWX build, one tiny model, one briefly trained model (the agent tests).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import steca_data  # noqa: F401 - first: hides torch extension wheels that cannot load (steca_data.compat)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# every vLLM engine and server of the session starts as on a fresh machine: no model-inspection verdicts cached
# (a warm ~/.cache/vllm once hid a failure of every fresh machine's first build; tests/policies/test_vllm.py)
os.environ["VLLM_CACHE_ROOT"] = tempfile.mkdtemp(prefix="steca-tests-vllm-cache-")
atexit.register(shutil.rmtree, os.environ["VLLM_CACHE_ROOT"], True)

REPO = Path(__file__).resolve().parent.parent


def write_recipe(directory: Path, name: str = "tiny", train: int = 12, **sections) -> Path:
    """A small TWX recipe whose build dir lives inside ``directory``."""
    recipe = {
        "name": name,
        "env": {
            "name": "textworld_express",
            "game": "twc",
            "params": {"numLocations": 1, "numItemsToPutAway": 2},
            "max_steps": 20,
            "workers": 2,
            "splits": {
                "train": {"fold": "train", "start": 0, "count": train},
                "seen": {"fold": "train", "start": 900, "count": 4},
                "unseen": {"fold": "test", "start": 0, "count": 4},
            },
        },
        "prompt": {"include_example": False},
        "output": {"dir": str(directory / "build")},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(recipe.get(key), dict):
            recipe[key] = {**recipe[key], **value}
        else:
            recipe[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def count(db: Path, sql: str) -> int:
    """The one number a ``select count(*) ...`` returns from a build's cache (opened read-only)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``steca-data`` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "steca_data.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def recipe_factory(tmp_path):
    def make(**kwargs) -> Path:
        return write_recipe(tmp_path, **kwargs)

    return make


TINY_RECIPE = """\
name: tiny-agent
seed: 0
env:
  name: textworld_express
  game: twc
  params: {numLocations: 1, numItemsToPutAway: 1}
  max_steps: 8
  workers: 2
  splits:
    train:  {fold: train, start: 0, count: 60}
    seen:   {fold: train, start: 900, count: 4}
    unseen: {fold: test, start: 0, count: 4}
experts: {source: env, thoughts: {backend: template}}
prompt: {include_example: false, history: 2}
model: {vocab_size: 400, hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, max_positions: 768}
sft: {max_steps: 60, lr: 5.0e-3, warmup_steps: 5, batch_tokens: 2048, threads: 1, log_every: 5, save_every: 1000}
policy: {backend: transformers, constrained: true, max_new_tokens: 32, batch_size: 16, threads: 1}
eval: {splits: [seen, unseen], greedy: true, samples: 1}
output: {dir: BUILD_DIR}
"""


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@pytest.fixture(scope="session")
def tiny_recipe_path(tmp_path_factory) -> Path:
    """A built tiny recipe (60 one-item twc expert trajectories) in its own temp dir."""
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    root = tmp_path_factory.mktemp("agent")
    path = root / "tiny.yaml"
    path.write_text(TINY_RECIPE.replace("BUILD_DIR", str(root / "build")))
    Builder(load_recipe(path), Reporter(quiet=True)).build()
    return path


@pytest.fixture(scope="session")
def tiny_recipe(tiny_recipe_path):
    from steca_data.recipe.model import load_recipe

    return load_recipe(tiny_recipe_path)


@pytest.fixture(scope="session")
def tiny_rows(tiny_recipe):
    from steca_data.training.data import load_rows

    return load_rows(tiny_recipe.build_dir / "dataset", ["expert"])


@pytest.fixture(scope="session")
def init_model_dir(tiny_recipe) -> Path:
    from steca_data.training.init_model import corpus_texts, init_model

    out = tiny_recipe.build_dir / "models" / "init"
    init_model(tiny_recipe.model, corpus_texts(tiny_recipe.build_dir / "dataset", ["expert"]), out)
    return out


@pytest.fixture(scope="session")
def tokenizer(init_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(init_model_dir))


@pytest.fixture(scope="session")
def examples(tiny_recipe, tiny_rows, tokenizer):
    from steca_data.training.data import rows_to_examples

    return rows_to_examples(tiny_rows, tokenizer, tiny_recipe.prompt.history, 768)[0]


@pytest.fixture(scope="session")
def trained_model_dir(tiny_recipe, init_model_dir, examples, tokenizer) -> Path:
    """The init model after 60 SFT steps: enough to write 'Thought: …\\nAction: …' replies."""
    from steca_data.training.trainer import train

    out = tiny_recipe.build_dir / "models" / "sft"
    train(tiny_recipe.sft, init_model_dir, examples, out, tokenizer, pad_id=tokenizer.pad_token_id)
    return out


@pytest.fixture(scope="session")
def local_policy(trained_model_dir):
    from steca_data.policies.transformers_policy import TransformersPolicy

    return TransformersPolicy(trained_model_dir, batch_size=16, threads=1)


@pytest.fixture(scope="session")
def env_pool(tiny_recipe):
    from steca_data.envs import SessionPool, make_backend

    backend = make_backend(tiny_recipe.env)
    pool = SessionPool(backend, 2)
    yield pool
    pool.close()
    backend.close()


@pytest.fixture
def scratch(tmp_path) -> Path:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
