"""The recipe's ``executor`` section: where a build runs, never what it makes.

It is left out of the data fingerprint and out of every unit key, so a local build and a Ray build of the same
recipe share one cache and write the same bytes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from steca_data.core.section import Section


class ExecutorSpec(Section):
    """``kind: local`` (one process: environment threads beside one engine) or ``kind: ray`` (episode workers
    beside their environments, engine replicas as actors, results streamed to this process)."""

    kind: Literal["local", "ray"] = Field("local", description="local: one process; ray: a Ray cluster.")
    max_active: int = Field(256, ge=1, le=100_000, description="Episodes in flight per process (local and per worker).")
    address: str | None = Field(
        None,
        description="ray: 'auto' (the cluster `ray start` made on this machine), 'HOST:PORT' or 'ray://HOST:PORT'; "
        "none: start a Ray instance for this build alone.",
    )
    env_workers: int | None = Field(
        None, ge=1, le=10_000, description="ray: episode workers (one CPU each); default: the cluster's free CPUs."
    )
    worker_cpus: float = Field(1.0, gt=0.0, le=64.0, description="ray: CPUs each episode worker reserves.")
    worker_sessions: int | None = Field(
        None,
        ge=1,
        le=1_000,
        description="ray: environment threads per episode worker; default: its CPUs (env.workers is this "
        "process's). More threads than CPUs only contend for the GIL.",
    )
    engines: int = Field(1, ge=1, le=1_000, description="ray, policy.backend vllm: engine replicas (actors).")
    engine_gpus: int = Field(
        0, ge=0, le=64, description="ray: GPUs per engine replica (its tensor-parallel size); 0 on CPU machines."
    )
    shard_size: int = Field(8, ge=1, le=10_000, description="ray: units per worker call (one task's units).")
    shards_per_worker: int = Field(4, ge=1, le=1_000, description="ray: shards a worker plays at once.")
    unit_timeout_s: float | None = Field(
        None, gt=0.0, description="ray: a shard running longer than this per episode is hung: its worker is replaced."
    )
    retries: int = Field(3, ge=0, le=100, description="ray: re-dispatches of a shard whose worker or node died.")
    placement_timeout_s: float = Field(
        300.0, gt=0.0, description="ray: give up when no worker can be placed for this long (no free CPUs)."
    )

    @property
    def sessions_per_worker(self) -> int:
        return self.worker_sessions or max(1, round(self.worker_cpus))
