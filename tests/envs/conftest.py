"""Fixtures shared by the environment tests: one generated ALFWorld game set per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ALFWORLD_GAMES = {"train": 6, "valid_seen": 1, "valid_unseen": 2}


@pytest.fixture(scope="session")
def games(tmp_path_factory) -> Path:
    """Six train games (all six task types), one valid_seen and two valid_unseen, seed 7 (a few seconds each)."""
    pytest.importorskip("alfworld")
    pytest.importorskip("fast_downward")
    from steca_data.envs.alfworld.generate import generate

    out = tmp_path_factory.mktemp("alfworld-games")
    report = generate(out, seed=7, games=ALFWORLD_GAMES, size="small")
    assert not report.failed(), [r.rejected for r in report.failed()]
    return out
