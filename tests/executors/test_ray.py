"""The Ray executor on a simulated two-node cluster: the same parquet bytes as a local build, also after a
worker is SIGKILLed and after a node is removed mid-build. Real Ray, real TWX simulators in the workers, real
DuckDB; the random policy keeps the builds to seconds (the vLLM replica has its own test)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from steca_data.build.builder import Builder
from steca_data.core.progress import Reporter
from steca_data.recipe.model import load_recipe
from tests.conftest import run_cli, write_recipe

pytest.importorskip("ray")

SECTIONS = {
    "train": 4,
    "datasets": ["expert", "dc", "de", "ds"],
    "policy": {"backend": "random", "constrained": True},
    "rollouts": {"n": 3},
}
RAY = ["executor.kind=ray", "executor.env_workers=4", "executor.shard_size=4"]


class Watched(Builder):
    """A builder whose context (and so its executor) the test can see while it builds."""

    ctx = None

    def context(self, cache):
        self.ctx = super().context(cache)
        return self.ctx


def parquet(build: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((build / "parquet").glob("*.parquet"))}


def build(root: Path, sets: list[str], strike=None, after: int = 60):
    """Build; with ``strike``, call it (on this thread) once ``after`` results reached the driver."""
    recipe = load_recipe(write_recipe(root, **SECTIONS), sets)
    builder = Watched(recipe, Reporter(quiet=True))
    if strike is None:
        builder.build()
        return parquet(recipe.build_dir), builder.ctx.executor
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _guard(builder.build, errors))
    thread.start()
    deadline = time.monotonic() + 180
    while thread.is_alive() and time.monotonic() < deadline:
        ex = builder.ctx.executor if builder.ctx is not None else None
        if ex is not None and getattr(ex, "delivered", 0) >= after and any(w.shards for w in list(ex.workers_)):
            strike(ex)
            break
        time.sleep(0.01)
    thread.join(timeout=240)
    assert not thread.is_alive(), "the build did not finish"
    assert not errors, errors
    return parquet(recipe.build_dir), builder.ctx.executor


def _guard(fn, errors):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread
        errors.append(exc)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    files, _ = build(tmp_path_factory.mktemp("local"), [])
    assert set(files) == {"expert.parquet", "dc.parquet", "de.parquet", "ds.parquet"}
    return files


def test_ray_build_on_two_nodes_is_byte_identical_to_local(ray_cluster, local, tmp_path):
    files, ex = build(tmp_path, RAY)
    assert files == local
    assert len(ex.nodes) == 2, "the four workers were spread over both nodes"
    assert ex.lost_shards == 0
    assert ex.replayed >= SECTIONS["train"], "gold replays ran on the workers, beside their simulators"


def test_a_sigkilled_worker_loses_nothing(ray_cluster, local, tmp_path):
    killed = []

    def kill_a_busy_worker(ex):
        worker = next(w for w in list(ex.workers_) if w.ready and w.shards)
        os.kill(worker.pid, signal.SIGKILL)
        killed.append(worker.pid)

    files, ex = build(tmp_path, RAY, kill_a_busy_worker)
    assert killed and ex.lost_shards >= 1 and ex.replaced >= 1
    assert files == local


def test_a_sigkilled_driver_resumes_from_its_cache(ray_cluster, local, tmp_path):
    """The driver (a CLI build on the cluster) dies mid-rollouts; the next build resumes from DuckDB."""
    path = write_recipe(tmp_path, **SECTIONS)
    sets = [arg for s in [*RAY, f"executor.address={ray_cluster.address}"] for arg in ("--set", s)]
    killed = run_cli("build", str(path), "--quiet", *sets, env={"STECA_DATA_KILL_AFTER_UNITS": "80"})
    assert killed.returncode == -9, killed.stderr
    resumed = run_cli("build", str(path), "--quiet", *sets)
    assert resumed.returncode == 0, resumed.stderr
    assert parquet(tmp_path / "build") == local


def test_a_removed_node_loses_nothing(ray_cluster, local, tmp_path):
    """Last in the module: it takes a node away (and puts a fresh one back for whatever runs next)."""
    removed = []

    def remove_a_busy_node(ex):
        busy = next(w.node for w in list(ex.workers_) if w.ready and w.shards)
        node = next(n for n in ray_cluster.worker_nodes if n.node_id == busy)
        ray_cluster.remove_node(node)
        removed.append(busy)

    try:
        files, ex = build(tmp_path, RAY, remove_a_busy_node)
    finally:
        ray_cluster.add_node(num_cpus=2)
        ray_cluster.wait_for_nodes(timeout=60)
    assert removed and ex.lost_shards >= 1
    assert files == local
