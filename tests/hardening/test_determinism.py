"""Same recipe, same machine, two cold builds: byte-identical parquet files (warm-up + rollouts + Dc/De/Ds).

The warm-up's schedule is fixed by the recipe (no wall-time refit), proposals and rollouts are seeded per
unit (from their keys, which hold the policy id), and assembly sorts what it reads; a difference names the
dataset and the first differing row. The policy id hashes the checkpoint, not its training log (wall time).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.recipe.model import load_recipe
from tests.conftest import write_recipe
from tests.stages.test_agent import AGENT

SMALL_QUICKSTART = {  # the tiny warm-up agent recipe, with eta and the rollout scope of the quickstart
    **AGENT,
    "reward": {"eta": 0.5},
    "rollouts": {**AGENT["rollouts"], "scope": "first_deviation"},
}


def _first_difference(a, b) -> str:
    rows_a, rows_b = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
    if len(rows_a) != len(rows_b):
        return f"{len(rows_a)} vs {len(rows_b)} rows"
    for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=True)):
        if x != y:
            keys = [k for k in x if x[k] != y.get(k)]
            return f"row {i} differs in {keys}: {x.get('id')} vs {y.get('id')}"
    return "same rows, different bytes (parquet metadata)"


@pytest.fixture(scope="module")
def two_cold_builds(tmp_path_factory) -> tuple[Path, Path]:
    roots = []
    for run in ("a", "b"):
        root = tmp_path_factory.mktemp(f"cold-{run}")
        path = write_recipe(root, name="det", train=4, **SMALL_QUICKSTART)
        summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
        assert summary.failed == 0 and summary.output.counts["expert"] == 4
        roots.append(root / "build")
    return roots[0], roots[1]


def test_two_cold_builds_train_the_same_warm_up_weights(two_cold_builds):
    a, b = two_cold_builds
    weights = [
        sorted((a / "models").rglob("sft/model.safetensors")),
        sorted((b / "models").rglob("sft/model.safetensors")),
    ]
    assert len(weights[0]) == len(weights[1]) == 1
    assert weights[0][0].read_bytes() == weights[1][0].read_bytes(), "the warm-up's schedule ignores wall time"


def test_two_cold_builds_give_byte_identical_parquet(two_cold_builds):
    a, b = (root / "parquet" for root in two_cold_builds)
    names = sorted(p.name for p in a.iterdir())
    assert names == ["dc.parquet", "de.parquet", "ds.parquet", "expert.parquet"]
    ids = [_policy_ids(root) for root in two_cold_builds]
    assert ids[0] == ids[1], f"policy ids differ for identical weights: {ids}"
    differ = {n: _first_difference(a / n, b / n) for n in names if (a / n).read_bytes() != (b / n).read_bytes()}
    assert not differ, differ


def _policy_ids(build: Path) -> list[str]:
    import duckdb

    con = duckdb.connect(str(build / "cache.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("select distinct policy_id from rollouts order by 1").fetchall()]
    finally:
        con.close()
