"""One Ray instance for the session: a simulated cluster (a 0-CPU head and two 2-CPU nodes, all on this
machine), which the node-removal test needs and every Ray test can share (one process holds one Ray
connection). Dead nodes are noticed in seconds, not ~17 s (health checks every second, a node dead after three
missed 5 s checks: NOTES' 500 ms / 2 misses killed live nodes under load), and Ray's
token authentication is off (it is on by default in Ray 2.60)."""

from __future__ import annotations

import os

import pytest

HEALTH = {  # NOTES' 500 / 500 / 2 marked live nodes dead on a loaded 2-core machine (raylets exited, tests hung)
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "5000",
    "RAY_health_check_failure_threshold": "3",
}


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    saved = {k: os.environ.get(k) for k in HEALTH}
    os.environ.update(HEALTH)
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        for _ in range(2):
            cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes(timeout=60)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    yield cluster
    ray.shutdown()
    cluster.shutdown()
