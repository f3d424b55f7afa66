"""The recipe's ``executor`` section: ``--set`` reaches it, a bad value is one line naming the field (exit 2),
and it is no part of the data fingerprint (local and Ray builds share a cache). Also the engine routing and the
worker choice of the Ray executor, as pure functions of loads (task affinity, least loaded first, a load cap),
and the shards an instant policy (no engine) plays at once per worker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from steca_data.core.errors import RecipeError
from steca_data.recipe.model import load_recipe
from tests.conftest import run_cli, write_recipe


def test_set_reaches_the_executor_section_and_leaves_the_fingerprint_alone(tmp_path):
    path = write_recipe(tmp_path)
    local = load_recipe(path)
    ray = load_recipe(path, ["executor.kind=ray", "executor.env_workers=6", "executor.address=auto"])
    assert (local.executor.kind, ray.executor.kind, ray.executor.env_workers) == ("local", "ray", 6)
    assert ray.fingerprint() == local.fingerprint()
    assert load_recipe(path, ["rollouts.n=2"]).fingerprint() != local.fingerprint()


@pytest.mark.parametrize(
    ("setting", "field"),
    [("executor.kind=spark", "executor.kind"), ("executor.env_workers=0", "executor.env_workers"),
     ("executor.nodes=3", "executor.nodes"), ("executor.worker_cpus=true", "executor.worker_cpus")],
)  # fmt: skip
def test_a_bad_executor_value_names_its_field(tmp_path, setting, field):
    with pytest.raises(RecipeError) as err:
        load_recipe(write_recipe(tmp_path), [setting])
    assert len(err.value.lines) == 1 and field in err.value.lines[0]


def test_a_bad_executor_value_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("plan", str(write_recipe(tmp_path)), "--set", "executor.kind=spark")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "executor.kind" in lines[0], proc.stderr


def _run(engines: int = 0, workers: int = 0, backend: str | None = None, shards_per_worker: int = 4):
    from steca_data.executors.ray_executor import ShardRun

    spec = SimpleNamespace(shards_per_worker=shards_per_worker)
    ex = SimpleNamespace(engines=["e"] * engines, workers_=[object()] * workers, worker_affinity={}, spec=spec)
    source = SimpleNamespace(policy_id="p", spec=SimpleNamespace(backend=backend) if backend else None)
    return ShardRun(ex, None, SimpleNamespace(source=source), [], None, None)


def test_engine_routing_is_sticky_per_task_least_loaded_first_and_capped():
    run = _run(engines=2, workers=2)  # cap: one shard per worker per engine above the least loaded
    first = run.route("a")
    run.engine_load[first] += 1
    second = run.route("b")
    assert second != first, "a new task goes to the least loaded replica"
    run.engine_load[second] += 1
    assert run.route("a") == first, "a task's rollouts stay on its replica (its prefix cache)"
    run.engine_load[first] += 3
    assert run.route("a") == second, "unless that replica is loaded past the cap"


def test_an_unreachable_ray_address_is_one_line_and_exit_1(tmp_path):
    pytest.importorskip("ray")
    sets = ["executor.kind=ray", "executor.address=127.0.0.1:1", "datasets=[expert,de]", "policy.backend=random"]
    proc = run_cli("build", str(write_recipe(tmp_path, train=2)), "--quiet", *[a for s in sets for a in ("--set", s)])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
    assert proc.returncode == 1 and len(errors) == 1 and "executor.address" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_task_stays_on_its_worker_while_that_worker_is_not_busier():
    from steca_data.executors.ray_executor import Worker

    run = _run(backend="transformers")
    a, b = Worker("a", None, ready=True), Worker("b", None, ready=True)
    assert run._worker_for("t1", [a, b]) is a  # first assignment: least loaded
    a.shards = 1
    assert run._worker_for("t1", [a, b]) is a  # one shard above the least loaded: still its worker
    assert run._worker_for("t2", [a, b]) is b  # a new task goes to the least loaded
    a.shards = 2
    assert run._worker_for("t1", [a, b]) is b  # two above: moved, and it stays on the new worker
    a.shards = b.shards = 0
    assert run._worker_for("t1", [a, b]) is b
    assert run._worker_for("t1", [a]) is a  # its worker is not free: any free one


def test_instant_policies_play_two_shards_per_worker_at_once():
    assert _run(backend="random").per_worker == 2 and _run(backend="eps_expert").per_worker == 2
    assert _run(backend="random", shards_per_worker=1).per_worker == 1
    assert _run(backend="vllm").per_worker == 4 and _run().per_worker == 4
