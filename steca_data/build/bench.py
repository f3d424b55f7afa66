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


class BenchError(RuntimeError):
    """The bench cannot run (no build or no base agent yet); the message says what to do."""


def bench_policy(recipe, model: str | None):
    """The policy to measure: ``model`` if given, else the base agent the recipe's build resolved."""
    from steca_data.build.builder import open_build
    from steca_data.stages.agent import AgentHandle, agent_handle, needs_warmup

    if model is not None or not needs_warmup(recipe):
        return agent_handle(recipe.policy, model or recipe.policy.model).policy
    if not recipe.cache_path.is_file():
        raise BenchError(
            f"no build at {recipe.build_dir}: run `steca-data build RECIPE` first (it trains the base agent)"
        )
    with open_build(recipe) as ctx:
        agent = ctx.find(AgentHandle)
    if agent is None:
        raise BenchError("the warm-up model of RECIPE is not built yet: run `steca-data build RECIPE` first")
    return agent.policy


def run_bench(recipe, tasks: int, n: int | None, model: str | None, baseline: bool) -> tuple[dict, list[ArmResult]]:
    """Both arms on the same rollouts; returns the JSON figures and the arms."""
    from steca_data.envs.registry import list_tasks, make_backend
    from steca_data.episodes.runner import PromptConfig
    from steca_data.policies.base import sampling_params

    policy = bench_policy(recipe, model)
    params = sampling_params(recipe.policy, recipe.rollouts.temperature)
    backend = make_backend(recipe.env)
    try:
        starts = bench_starts(list_tasks(recipe.env, "train")[:tasks], n or recipe.rollouts.n, recipe.rollouts.seed)
        max_steps = recipe.rollouts.max_steps or recipe.env.max_steps
        prompt = PromptConfig.from_recipe(recipe)
        arms = [
            run_arm(name, backend, policy, starts, params, max_steps, prompt, recipe.env.workers, max_active=active)
            for name, active in [("engine", len(starts)), ("sequential", 1)][: 2 if baseline else 1]
        ]
    finally:
        backend.close()
    figures = {"arms": [a.as_dict() for a in arms], "policy_id": policy.policy_id, "tasks": tasks}
    if len(arms) == 2:
        figures["speedup"] = arms[0].rollouts_per_s / arms[1].rollouts_per_s
    return figures, arms


def bench_table(figures: dict, arms: list[ArmResult]):
    import os
    import platform

    from rich.table import Table

    machine = platform.processor() or platform.machine()
    table = Table(title=f"rollout throughput · {figures['policy_id']} · {machine}, {os.cpu_count()} cores")
    for col in ("arm", "rollouts", "steps", "seconds", "rollouts/s", "steps/s", "in policy", "in env", "inside"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for a in arms:
        table.add_row(
            a.name,
            str(a.rollouts),
            str(a.steps),
            f"{a.seconds:.1f}",
            f"{a.rollouts_per_s:.2f}",
            f"{a.steps / a.seconds:.1f}",
            f"{a.policy_s / a.seconds:.0%}",
            f"{a.env_s / a.seconds:.0%}",
            f"{a.inside_fraction:.0%}",
        )
    return table
