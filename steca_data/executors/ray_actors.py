"""What runs inside Ray's processes: episode workers beside their environments, and engine replicas.

An ``EpisodeWorker`` (one CPU) owns an environment backend and plays shards of episodes with the same episode
runner a local build uses, so an episode's text is the same wherever it is played. Its policy is loaded in the
worker (random, transformers, an OpenAI-compatible endpoint) or is an ``EngineReplica`` actor shared by many
workers (a vLLM engine; requests go to it one by one and are batched by its scheduler).

These are plain classes: ``ray.remote`` is applied by the executor, so importing this module needs no Ray.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from steca_data.core.failures import TransientError, describe, is_transient
from steca_data.envs.base import SessionPool
from steca_data.envs.registry import make_backend
from steca_data.executors.base import PlayJob
from steca_data.executors.local import play_here
from steca_data.policies.base import PolicyRequest, SamplingParams


@dataclass(frozen=True)
class RemotePolicy:
    """What a worker needs to load the build's policy: the recipe's policy section and the weights, or the
    engine replica that serves them."""

    policy_id: str
    spec: Any = None
    model: str | None = None
    engine: Any = None  # an EngineReplica actor handle, or None: the worker loads the policy itself


class ReplicaPolicy:
    """A policy served by an engine replica actor: each request is one actor call, answered as it finishes."""

    def __init__(self, engine, policy_id: str):
        self.engine, self.policy_id = engine, policy_id

    def submit(self, request: PolicyRequest, params: SamplingParams) -> Future:
        return self.engine.generate.remote(request, params).future()

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        return [f.result() for f in [self.submit(r, params) for r in requests]]


def portable(value: Any) -> Any:
    """A result that survives the trip to the driver: an exception that cannot be pickled (a Java one from
    py4j) becomes one that can, transient or not as the original was."""
    if not isinstance(value, BaseException):
        return value
    try:
        pickle.dumps(value)
        return value
    except Exception:  # noqa: BLE001 - any pickling failure
        return (TransientError if is_transient(value) else RuntimeError)(describe(value, 2000))


class EpisodeWorker:
    """One worker process: an environment backend (started on first use) and the policies it was sent."""

    def __init__(self, env, sessions: int, max_active: int):
        self.env, self.sessions, self.max_active = env, sessions, max_active
        self._backend = None
        self._pool: SessionPool | None = None  # ``sessions`` threads shared by the shards played at once
        self._policies: dict[str, Any] = {}
        self._lock = threading.Lock()

    def ready(self) -> tuple[int, str]:
        """(pid, node id): answered once the worker runs, so the driver only sends work to placed workers."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def _policy(self, source: RemotePolicy):
        with self._lock:
            if source.policy_id not in self._policies:
                if source.engine is not None:
                    policy = ReplicaPolicy(source.engine, source.policy_id)
                else:
                    from steca_data.policies.factory import make_policy

                    policy = make_policy(source.spec, source.model)
                self._policies[source.policy_id] = policy
            return self._policies[source.policy_id]

    def _env(self) -> tuple[Any, SessionPool]:
        """The backend and the worker's environment threads: every shard in flight steps on the same
        ``sessions`` threads, so a one-CPU worker playing four shards runs one thread, not four on one GIL."""
        with self._lock:
            if self._backend is None:
                self._backend = make_backend(self.env)
                self._pool = SessionPool(self._backend, self.sessions)
            return self._backend, self._pool

    def play(self, job: PlayJob, indices: list[int], starts: list) -> list[tuple[int, Any]]:
        """Play one shard; returns ``(index, trajectory or exception)`` for every start."""
        results: dict[int, Any] = {}
        policy = self._policy(job.source)
        backend, pool = self._env()
        play_here(backend, self.sessions, replace(job, source=None), policy, starts,
                  results.__setitem__, None, self.max_active, "continuous", pool=pool)  # fmt: skip
        return [(indices[i], portable(value)) for i, value in sorted(results.items())]

    def map_sessions(self, fn, indices: list[int], items: list) -> list[tuple[int, Any]]:
        """``fn(backend, session, item)`` for one shard of items on this worker's sessions; returns
        ``(index, result or exception)`` for every item."""
        backend, pool = self._env()
        results: dict[int, Any] = {}
        for k, outcome in pool.imap_unordered(lambda session, k: fn(backend, session, items[k]), range(len(items))):
            results[indices[k]] = portable(outcome)
        return sorted(results.items())

    def restart(self) -> None:
        """Drop the environment (the build retries failed units in a fresh one)."""
        with self._lock:
            backend, self._backend = self._backend, None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if backend is not None:
            backend.close()


class EngineReplica:
    """One inference engine (vLLM: ``num_gpus`` = its tensor-parallel size on GPU machines; its CPU build here),
    answering requests from many workers at once; its scheduler batches them continuously."""

    def __init__(self, spec, model: str | None):
        from steca_data.policies.factory import make_policy

        self.policy = make_policy(spec, model)

    def ready(self) -> str:
        return self.policy.policy_id

    async def generate(self, request: PolicyRequest, params: SamplingParams) -> str:
        if hasattr(self.policy, "submit"):
            return await asyncio.wrap_future(self.policy.submit(request, params))
        return (await asyncio.to_thread(self.policy.generate, [request], params))[0]
