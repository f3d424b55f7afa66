"""The Ray executor: episodes on workers beside their environments, results streamed to this process.

The driver (this process) lists units, sends shards of episode starts (one task's starts, up to
``executor.shard_size``) to episode workers and stores each shard's results the moment it returns: it stays the
only writer of the cache. Placement never shapes a result (seeds come from unit keys), so a shard may be played
anywhere, and twice: the first result of a start stands.

Faults: when a worker or its node dies, Ray's error (actor died, node died) comes back for its shards; their
starts go back to the queue and are played by the workers left, while a replacement worker is started (used
once Ray has placed it). A shard that runs past ``executor.unit_timeout_s`` per start kills its worker the same
way (a hung environment step). After ``executor.retries`` such losses a start fails as a transient failure,
which the stage template retries in its next attempt.

Environment work that is not an episode (gold paths, imported replays) and I/O-bound calls run on this process,
as under the local executor.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from steca_data.core.failures import is_transient
from steca_data.executors.base import FollowUp, OnResult, PlayJob
from steca_data.executors.local import LocalExecutor
from steca_data.executors.ray_actors import EngineReplica, EpisodeWorker, RemotePolicy
from steca_data.policies.base import INSTANT_BACKENDS


class RayUnavailable(RuntimeError):
    """``executor.kind: ray`` without Ray installed, or no cluster at ``executor.address``."""


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            "Ray is not installed: pip install 'steca-data[ray]' (or set executor.kind: local)"
        ) from exc
    return ray


def unreachable(address: str | None, timeout_s: float = 5.0) -> str | None:
    """Why a ``HOST:PORT`` address takes no connection (None: it does, or it is 'auto', ray:// or empty)."""
    if not address or address == "auto" or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class Worker:
    handle: Any
    ready_ref: Any
    ready: bool = False
    shards: int = 0  # in flight
    pid: int | None = None
    node: str | None = None


@dataclass
class Shard:
    worker: Worker
    indices: list[int]
    engine: int | None
    sent: float = field(default_factory=time.monotonic)


class RayExecutor(LocalExecutor):
    kind = "ray"

    def __init__(self, env, workers: int, spec, on_start=None):
        super().__init__(env, workers, spec.max_active, on_start=on_start)
        self.spec = spec
        self.workers_: list[Worker] = []
        self.engines: list[Any] = []
        self._engine_for: str | None = None  # the policy id the engines serve
        self._started_ray = False
        self.delivered = 0  # results stored by this executor (tests watch it to strike mid-build)
        self.lost_shards = 0  # shards whose worker or node died under them (or hung)
        self.replaced = 0  # workers started in place of dead ones
        self.replayed = 0  # replays (gold, imported) the workers ran
        self.nodes: set[str] = set()  # nodes workers ran on
        # task id -> the worker that last played it: its sessions have the game loaded and its process has
        # the game's translations cached (ALFWorld: ~200 ms a game cold), so a task's shards stay there
        self.worker_affinity: dict[str, Worker] = {}

    # ------------------------------------------------------------------------------------ the cluster
    def connect(self):
        ray = import_ray()
        if not ray.is_initialized():
            problem = unreachable(self.spec.address)
            if problem:  # Ray itself would retry an unreachable address for minutes
                raise RayUnavailable(
                    f"no Ray cluster at executor.address {self.spec.address!r} ({problem}); start one with `ray "
                    "start --head` or leave executor.address empty to start one for this build"
                )
            kwargs = {"address": self.spec.address, "log_to_driver": False, "logging_level": "ERROR"}
            if self.spec.address is None:
                kwargs["include_dashboard"] = False
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise RayUnavailable(
                    f"no Ray cluster at executor.address {self.spec.address!r} ({exc}); start one with `ray start "
                    "--head` or leave executor.address empty to start one for this build"
                ) from exc
            self._started_ray = True
        return ray

    def _worker_count(self, ray) -> int:
        if self.spec.env_workers:
            return self.spec.env_workers
        engine_cpus = len(self.engines)
        return max(1, int((ray.cluster_resources().get("CPU", 1) - engine_cpus) // self.spec.worker_cpus))

    def _new_worker(self, ray) -> Worker:
        actor = ray.remote(EpisodeWorker).options(
            num_cpus=self.spec.worker_cpus,
            max_concurrency=self.spec.shards_per_worker + 1,  # + 1: ``ready`` and ``restart`` never wait
            max_restarts=0,
            scheduling_strategy="SPREAD",
        )
        handle = actor.remote(self.env, self.spec.sessions_per_worker, self.spec.max_active)
        return Worker(handle, handle.ready.remote())

    def _start_workers(self, ray) -> None:
        if not self.workers_:
            self.workers_ = [self._new_worker(ray) for _ in range(self._worker_count(ray))]

    def _start_engines(self, ray, source) -> None:
        """Engine replicas for a vLLM policy (others are loaded by each worker)."""
        if self._engine_for == source.policy_id:
            return
        for engine in self.engines:
            ray.kill(engine)
        gpus = self.spec.engine_gpus
        actor = ray.remote(EngineReplica).options(num_cpus=0 if gpus else 1, num_gpus=gpus, max_restarts=-1,
                                                  max_task_retries=-1, scheduling_strategy="SPREAD")  # fmt: skip
        self.engines = [actor.remote(source.spec, source.model) for _ in range(self.spec.engines)]
        ray.get([e.ready.remote() for e in self.engines], timeout=self.spec.placement_timeout_s)
        self._engine_for = source.policy_id

    def replace(self, ray, worker: Worker) -> None:
        """A worker died (or hung): stop it and start another in its place."""
        if worker in self.workers_:
            self.workers_.remove(worker)
        ray.kill(worker.handle, no_restart=True)
        self.workers_.append(self._new_worker(ray))
        self.replaced += 1

    # -------------------------------------------------------------------------------------- playing
    def play(self, job: PlayJob, starts, on_result: OnResult, follow_up: FollowUp | None) -> None:
        spec = getattr(job.source, "spec", None)
        if spec is None:  # a policy loaded here alone (evaluation's): play it here
            return super().play(job, starts, on_result, follow_up)
        ray = self.connect()
        source = RemotePolicy(job.source.policy_id, spec, getattr(job.source, "model", None))
        if spec.backend == "vllm":
            self._start_engines(ray, source)
        self._start_workers(ray)
        ShardRun(self, ray, replace(job, source=source), list(starts), on_result, follow_up).run()

    def map_sessions(self, fn, items: list, on_result: OnResult) -> None:
        """Environment work that asks no policy (gold and imported replays) runs on the episode workers too,
        beside their simulators; results come back here, to the only writer of the cache."""
        if not items:
            return
        ray = self.connect()
        self._start_workers(ray)
        SessionRun(self, ray, fn, list(items), on_result).run()

    def notes(self) -> list[str]:
        if not self.nodes:
            return []
        workers = sum(w.ready for w in self.workers_)
        lost = (
            f"; {self.lost_shards} shard(s) played again after {self.replaced} worker(s) died" if self.replaced else ""
        )
        engines = f", {len(self.engines)} engine replica(s)" if self.engines else ""
        return [f"ray: {workers} episode worker(s) on {len(self.nodes)} node(s){engines}{lost}"]

    def use_env(self, env) -> None:
        if env is not self.env and self.workers_:  # workers hold the old section: start fresh ones
            ray = import_ray()
            for worker in self.workers_:
                ray.kill(worker.handle, no_restart=True)
            self.workers_ = []
            self.worker_affinity.clear()
        super().use_env(env)

    def restart(self) -> None:
        super().restart()
        for worker in self.workers_:
            if worker.ready:
                worker.handle.restart.remote()

    def close(self) -> None:
        super().close()
        if self.workers_ or self.engines:
            ray = import_ray()
            for actor in [w.handle for w in self.workers_] + self.engines:
                ray.kill(actor, no_restart=True)
            self.workers_, self.engines, self._engine_for = [], [], None
        if self._started_ray:
            import_ray().shutdown()
            self._started_ray = False


class ShardRun:
    """One ``play`` call on the cluster: the queue of starts, the shards in flight and their engines."""

    def __init__(self, executor: RayExecutor, ray, job: PlayJob, starts: list, on_result, follow_up):
        self.ex, self.ray, self.job, self.starts = executor, ray, job, starts
        self.on_result, self.follow_up = on_result, follow_up
        self.pending: deque[int] = deque(range(len(starts)))
        self.inflight: dict[Any, Shard] = {}
        self.losses: dict[int, int] = {}
        self.done: set[int] = set()
        self.affinity: dict[str, int] = {}  # task id -> engine replica (its prefix cache holds the task)
        self.engine_load = [0] * len(executor.engines)
        # shards a worker plays at once: enough episodes in flight for the engines; with an instant policy
        # (no engine) one shard keeps the worker's CPU busy and a second hides the round trip, more only
        # contend for its GIL (ALFWorld, 2 workers: 1.2x one process at 4, 1.7x at 2)
        spec = getattr(getattr(job, "source", None), "spec", None)  # no job: a map of sessions (replays)
        instant = spec is not None and spec.backend in INSTANT_BACKENDS
        self.per_worker = min(2, executor.spec.shards_per_worker) if instant else executor.spec.shards_per_worker
        self.idle_since = time.monotonic()

    def run(self) -> None:
        while self.pending or self.inflight:
            self._dispatch()
            waiting = {w.ready_ref: w for w in self.ex.workers_ if not w.ready}
            refs = list(self.inflight) + list(waiting)
            if not refs:  # nothing placed, nothing in flight: wait for Ray to place a worker
                time.sleep(0.5)
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=1.0) if refs else ([], [])
            for ref in ready:
                if ref in waiting:
                    self._placed(waiting[ref])
                else:
                    self._returned(ref)
            self._check_timeouts()
            self._check_placement()

    # ------------------------------------------------------------------------------------ dispatch
    def _next_shard(self) -> list[int]:
        """Consecutive pending starts of one task (units are listed task by task), up to the shard size."""
        first = self.pending.popleft()
        task = self._task_of(first)
        shard = [first]
        while self.pending and len(shard) < self.ex.spec.shard_size:
            if self._task_of(self.pending[0]) != task:
                break
            shard.append(self.pending.popleft())
        return shard

    def route(self, task_id: str) -> int | None:
        """Task affinity: a task's rollouts go to one replica (its prefix cache); least loaded on first
        assignment, and away from a replica loaded more than one shard per worker above the least loaded."""
        if not self.engine_load:
            return None
        least = min(range(len(self.engine_load)), key=self.engine_load.__getitem__)
        chosen = self.affinity.get(task_id)
        cap = self.engine_load[least] + math.ceil(len(self.ex.workers_) / len(self.engine_load))
        if chosen is None or self.engine_load[chosen] > cap:
            chosen = self.affinity[task_id] = least
        return chosen

    def _dispatch(self) -> None:
        while self.pending:
            free = [w for w in self.ex.workers_ if w.ready and w.shards < self.per_worker]
            if not free:
                return
            indices = self._next_shard()
            worker = self._worker_for(self._task_of(indices[0]), free)
            engine = self.route(self._task_of(indices[0]))
            job = self.job
            if engine is not None:
                self.engine_load[engine] += 1
                job = replace(job, source=replace(job.source, engine=self.ex.engines[engine]))
            ref = self._send(worker, job, indices)
            worker.shards += 1
            self.inflight[ref] = Shard(worker, indices, engine)

    def _worker_for(self, task_id: str, free: list[Worker]) -> Worker:
        """Sticky, then least loaded: the task's last worker while it is no more than one shard above the
        least loaded free one (placement never shapes results: seeds come from unit keys)."""
        least = min(free, key=lambda w: w.shards)
        sticky = self.ex.worker_affinity.get(task_id)
        chosen = sticky if any(w is sticky for w in free) and sticky.shards <= least.shards + 1 else least
        self.ex.worker_affinity[task_id] = chosen
        return chosen

    def _task_of(self, i: int) -> str:
        return self.starts[i].task.task_id

    def _send(self, worker: Worker, job: PlayJob, indices: list[int]):
        return worker.handle.play.remote(job, indices, [self.starts[i] for i in indices])

    # ------------------------------------------------------------------------------------- results
    def _placed(self, worker: Worker) -> None:
        try:
            worker.pid, worker.node = self.ray.get(worker.ready_ref, timeout=self.ex.spec.placement_timeout_s)
            worker.ready = True
            self.ex.nodes.add(worker.node)
        except Exception as exc:  # noqa: BLE001 - it died before it ran: start another
            if not is_transient(exc):
                raise
            self.ex.replace(self.ray, worker)

    def _returned(self, ref) -> None:
        shard = self._release(ref)
        try:
            results = self.ray.get(ref, timeout=self.ex.spec.placement_timeout_s)
        except Exception as exc:  # noqa: BLE001 - Ray's errors (worker or node died) are the ones to survive
            if not is_transient(exc):
                raise
            self._lost(shard, exc)
            return
        for i, value in results:
            self._deliver(i, value)

    def _release(self, ref) -> Shard:
        shard = self.inflight.pop(ref)
        shard.worker.shards -= 1
        if shard.engine is not None:
            self.engine_load[shard.engine] -= 1
        return shard

    def _lost(self, shard: Shard, error: BaseException) -> None:
        """The shard's worker or node died: its starts go back to the queue (or fail, after ``retries``)."""
        self.ex.lost_shards += 1
        if shard.worker in self.ex.workers_:
            self.ex.replace(self.ray, shard.worker)
        for i in reversed(shard.indices):
            if i in self.done:
                continue
            self.losses[i] = self.losses.get(i, 0) + 1
            if self.losses[i] > self.ex.spec.retries:
                self._deliver(i, error)
            else:
                self.pending.appendleft(i)

    def _deliver(self, i: int, value) -> None:
        if i in self.done:
            return
        self.done.add(i)
        self.ex.delivered += 1
        self.on_result(i, value)
        if self.follow_up is not None and not isinstance(value, BaseException):
            for start in self.follow_up(i, value):
                self.starts.append(start)
                self.pending.append(len(self.starts) - 1)

    # -------------------------------------------------------------------------------------- guards
    def _check_timeouts(self) -> None:
        """A shard past ``unit_timeout_s`` per start has a hung environment: kill its worker, play it again."""
        limit = self.ex.spec.unit_timeout_s
        if limit is None:
            return
        now = time.monotonic()
        for ref, shard in list(self.inflight.items()):
            if now - shard.sent > limit * len(shard.indices):
                self._release(ref)
                self._lost(shard, TimeoutError(f"a shard of {len(shard.indices)} episodes ran past {limit:.0f} s each"))

    def _check_placement(self) -> None:
        if any(w.ready for w in self.ex.workers_) or self.inflight:
            self.idle_since = time.monotonic()
        elif time.monotonic() - self.idle_since > self.ex.spec.placement_timeout_s:
            raise RayUnavailable(
                f"no Ray episode worker could be placed for {self.ex.spec.placement_timeout_s:.0f} s (executor."
                "placement_timeout_s): the cluster has no free CPUs; lower executor.worker_cpus or add nodes"
            )


class SessionRun(ShardRun):
    """One ``map_sessions`` call on the cluster (gold replays, imported replays): the same queue, retries and
    guards as episodes, each shard run on a worker's own simulator sessions; no engine is involved."""

    def __init__(self, executor: RayExecutor, ray, fn, items: list, on_result):
        super().__init__(executor, ray, None, items, lambda i, value: on_result(items[i], value), None)
        self.fn = fn
        self.engine_load = []  # no routing: a replay asks no policy

    def _task_of(self, i: int) -> str:
        return getattr(self.starts[i], "task_id", str(i))

    def _send(self, worker: Worker, job, indices: list[int]):
        return worker.handle.map_sessions.remote(self.fn, indices, [self.starts[i] for i in indices])

    def _deliver(self, i: int, value) -> None:
        self.ex.replayed += i not in self.done
        super()._deliver(i, value)
