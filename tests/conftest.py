"""Shared fixtures: small recipes written to tmp dirs, built with the real engine and real DuckDB files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``steca-data`` in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "steca_data.cli", *args],
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
