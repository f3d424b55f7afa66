"""``bench --scaling`` on the session's cluster: one process and two Ray workers play the same episodes, and
every component of R is measured (tiny TWX sizes: the ratio itself is the README's ALFWorld run)."""

from __future__ import annotations

import pytest

from steca_data.recipe.model import load_recipe
from tests.conftest import write_recipe

pytest.importorskip("ray")


def test_scaling_arms_play_the_same_episodes_and_measure_every_part(ray_cluster, tmp_path):
    from steca_data.build.scaling import run_scaling, scaling_lines

    figures = run_scaling(load_recipe(write_recipe(tmp_path, train=4)), tasks=4, n=2, workers=2)
    assert figures["identical"] == 1.0 and figures["episodes"] == 8
    assert [a["processes"] for a in figures["arms"]] == [1, 2, 1]  # 1 thread, 2 workers, the local executor
    assert all(a["warmup_seconds"] > 0 for a in figures["arms"])
    parts = ("reset_s", "step_s", "r_env_per_process", "r_driver_rows_per_s", "episode_latency_s", "ratio")
    for part in (*parts, "ratio_over_local"):
        assert figures[part] > 0, part
    assert any("scaling" in line for line in scaling_lines(figures))
