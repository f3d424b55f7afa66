"""``steca-data bench``: rollout throughput of the engine against the one-at-a-time baseline.

Both arms play the same rollouts (same tasks, prefixes and seeds) with the same policy and environment,
through the same episode runner: the engine advances every rollout in lock-step with one batched policy
call per step; the baseline (the reference implementation's strategy) plays one rollout at a time with one
policy call per step (``max_active=1``). Time inside policy calls and environment steps is measured from
the main thread, so the rest is the runner's own overhead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from steca_data.envs import SessionPool


@dataclass
class ArmResult:
    name: str
    rollouts: int
    steps: int
    seconds: float
    policy_s: float
    env_s: float

    @property
    def rollouts_per_s(self) -> float:
        return self.rollouts / self.seconds

    @property
    def inside_fraction(self) -> float:
        return (self.policy_s + self.env_s) / self.seconds

    def as_dict(self) -> dict:
        return asdict(self) | {"rollouts_per_s": self.rollouts_per_s, "inside_fraction": self.inside_fraction}


class TimedPolicy:
    def __init__(self, policy):
        self.policy = policy
        self.policy_id = policy.policy_id
        self.seconds = 0.0

    def generate(self, requests, params):
        start = time.perf_counter()
        try:
            return self.policy.generate(requests, params)
        finally:
            self.seconds += time.perf_counter() - start


class TimedPool(SessionPool):
    """A session pool that counts the wall time the caller spends waiting on environment work."""

    seconds = 0.0

    def map(self, fn, items):
        start = time.perf_counter()
        try:
            return super().map(fn, items)
        finally:
            self.seconds += time.perf_counter() - start


def run_arm(
    name: str, backend, policy, starts, params, max_steps: int, prompt, workers: int, max_active: int
) -> ArmResult:
    from steca_data.episodes.runner import run_episodes

    timed = TimedPolicy(policy)
    with TimedPool(backend, workers) as pool:
        pool.seconds = 0.0
        start = time.perf_counter()
        trajectories = run_episodes(
            pool, timed, starts, params, max_steps=max_steps, prompt=prompt, source="rollout", max_active=max_active
        )
        seconds = time.perf_counter() - start
        env_s = pool.seconds
    steps = sum(len(t.steps) - len(s.prefix) for t, s in zip(trajectories, starts, strict=True))
    return ArmResult(name, len(trajectories), steps, seconds, timed.seconds, env_s)


def bench_starts(tasks, n: int, seed: int):
    from steca_data.episodes.runner import EpisodeStart

    return [EpisodeStart(task, [], seed=seed + 1000 * i + j) for i, task in enumerate(tasks) for j in range(n)]
