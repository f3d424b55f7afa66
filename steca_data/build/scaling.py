"""``steca-data bench --scaling``: what one more worker process buys, and the parts a cluster's rate is made of.

A build's episode rate is R = min(R_env, R_llm, R_driver, M / L): environment steps a process can take,
requests the engines answer, rows the driver stores, and episodes in flight over an episode's latency. This
measures the environment-bound case on this machine — a random policy (no engine), the recipe's environment
and train tasks — played by one process on one environment thread (what each Ray worker is: the unit a
cluster is made of), by ``--workers`` Ray worker processes (a Ray instance started for the bench), and by the
local executor as the recipe runs it (``env.workers`` threads in one process), same starts and seeds; each
arm plays them twice and the second pass is timed (steady state: processes started, games loaded, caches
filled). The parts are measured separately:

- environment: reset (a new game) and step cost in one session, so R_env per process = 1 / (reset + k·step);
- driver: rollout rows stored per second into a scratch DuckDB file (what the driver does per result);
- the arms' episodes/s, the ratios, and whether they played the same episodes (they must).

The engine's part (requests/s) is the ``engine`` arm of the plain ``steca-data bench``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from steca_data.core.cpu import cpu_times, stolen_share


@dataclass
class ScalingArm:
    name: str
    processes: int
    episodes: int
    steps: int
    seconds: float
    stolen: float | None
    warmup_seconds: float  # the untimed first pass: processes started, games loaded, caches filled

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.seconds


def ensure_games(recipe):
    """The ``env`` section to play: environments that generate their own games (ALFWorld without official
    data) need them to list tasks, so run the build's games stage (cached: a build of the recipe made them
    already) and return the section pointed at them."""
    from steca_data.build.builder import compile_stages
    from steca_data.build.tables import build_tables
    from steca_data.cache.store import Cache
    from steca_data.stages.base import BuildContext, publish_output
    from steca_data.stages.games import GamesStage

    stages = [s for s in compile_stages(recipe) if isinstance(s, GamesStage)]
    if not stages:
        return recipe.env
    with Cache(recipe.cache_path, tables=build_tables(stages)) as cache:
        ctx = BuildContext(recipe, cache)
        try:
            stages[0].run(ctx)
            publish_output(ctx, stages[0])
            return ctx.env
        finally:
            ctx.close()


def env_costs(backend, tasks, max_steps: int, seed: int) -> tuple[float, float]:
    """(seconds per reset, seconds per step) in one session, random admissible actions, sequential."""
    import random

    session, rng = backend.new_session(), random.Random(seed)
    resets = steps = 0.0
    n_resets = n_steps = 0
    try:
        for task in tasks:
            start = time.perf_counter()
            result = session.reset(task)
            resets += time.perf_counter() - start
            n_resets += 1
            for _ in range(max_steps):
                if result.done or not result.admissible:
                    break
                start = time.perf_counter()
                result = session.step(rng.choice(result.admissible))
                steps += time.perf_counter() - start
                n_steps += 1
    finally:
        session.close()
    return resets / max(1, n_resets), steps / max(1, n_steps)


def driver_rows_per_s(trajectories, rows: int = 400) -> float:
    """Rollout-sized rows stored one at a time (as the rollout stage stores them) into a scratch cache."""
    from steca_data.cache.store import Cache
    from steca_data.stages.rollouts import ROLLOUTS

    data = [t.model_dump_json() for t in trajectories] or ["{}"]
    with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "bench.duckdb", tables=(ROLLOUTS,)) as cache:
        start = time.perf_counter()
        for i in range(rows):
            cache.put_rows("rollouts", [{"key": f"k{i}", "score_key": "s", "task_id": "t", "kind": "expert",
                                         "step": 0, "sample_index": i, "seed": i, "policy_id": "random",
                                         "prefix_len": 0, "num_steps": 1, "outcome_reward": 0.0, "success": False,
                                         "actions": json.dumps([]), "data": data[i % len(data)]}])  # fmt: skip
        cache.flush()
        return rows / (time.perf_counter() - start)


def _arm(name: str, processes: int, executor, job, starts) -> tuple[ScalingArm, list]:
    """Plays ``starts`` twice and times the second pass: the first starts the processes, loads every game
    and fills each process's caches, which a build of millions of steps pays once (its time is kept)."""
    start = time.perf_counter()
    executor.play(job, starts, lambda i, v: None, None)
    warmup = time.perf_counter() - start
    results: dict[int, object] = {}
    start, cpu = time.perf_counter(), cpu_times()
    executor.play(job, starts, results.__setitem__, None)
    seconds = time.perf_counter() - start
    failed = [v for v in results.values() if isinstance(v, BaseException)]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} episode(s) failed; first: {failed[0]}")
    played = [results[i] for i in range(len(starts))]
    steps = sum(len(t.steps) for t in played)
    arm = ScalingArm(name, processes, len(played), steps, seconds, stolen_share(cpu, cpu_times()), warmup)
    return arm, played


def run_scaling(recipe, tasks: int, n: int, workers: int = 2) -> dict:
    """Both arms and the components; returns the JSON figures (``ratio``: workers arm over one process)."""
    from steca_data.build.bench import bench_starts
    from steca_data.envs.registry import list_tasks
    from steca_data.episodes.runner import PromptConfig
    from steca_data.executors import LocalExecutor, PlayJob
    from steca_data.executors.ray_executor import RayExecutor
    from steca_data.policies.base import SamplingParams
    from steca_data.recipe.executor import ExecutorSpec
    from steca_data.stages.agent import agent_handle

    env = ensure_games(recipe)
    train = list_tasks(env, "train")[:tasks]
    starts = bench_starts(train, n, recipe.rollouts.seed)
    max_steps = recipe.rollouts.max_steps or recipe.env.max_steps
    source = agent_handle(recipe.policy.model_copy(update={"backend": "random", "model": None}), None)
    job = PlayJob(source, SamplingParams(temperature=1.0, constrained=True), max_steps,
                  PromptConfig.from_recipe(recipe), "rollout")  # fmt: skip
    single = LocalExecutor(env, 1)  # one process on one CPU: what each Ray worker is
    local = LocalExecutor(env, env.workers)  # the local executor as the recipe runs it
    ray_spec = ExecutorSpec(kind="ray", env_workers=workers, shard_size=max(1, n))
    spread = RayExecutor(env, env.workers, ray_spec)
    try:
        reset_s, step_s = env_costs(single.backend, train[: min(8, len(train))], max_steps, recipe.rollouts.seed)
        one, played = _arm("1 process", 1, single, job, starts)
        threads, _ = _arm(f"local x{env.workers}", 1, local, job, starts)
        many, played_many = _arm(f"{workers} workers", workers, spread, job, starts)
    finally:
        single.close()
        local.close()
        spread.close()
    steps_per_episode = one.steps / max(1, one.episodes)
    return {
        "policy_id": source.policy_id,  # part of every bench report: a later --json may replace this one
        "tasks": len(train),
        "episodes": len(starts),
        "max_steps": max_steps,
        "arms": [vars(a) | {"episodes_per_s": a.episodes_per_s} for a in (one, many, threads)],
        "identical": sum(a == b for a, b in zip(played, played_many, strict=True)) / max(1, len(played)),
        "reset_s": reset_s,
        "step_s": step_s,
        "steps_per_episode": steps_per_episode,
        "r_env_per_process": 1.0 / (reset_s + steps_per_episode * step_s),
        "r_driver_rows_per_s": driver_rows_per_s(played[:50]),
        "episode_latency_s": reset_s + steps_per_episode * step_s,
        "ratio": many.episodes_per_s / one.episodes_per_s,
        "ratio_over_local": many.episodes_per_s / threads.episodes_per_s,
        "local_threads": env.workers,
    }


def scaling_lines(f: dict) -> list[str]:
    one, many, threads = f["arms"]
    return [
        f"environment-bound scaling: {f['episodes']} random-policy episodes on {f['tasks']} train tasks "
        f"(max {f['max_steps']} steps)",
        *(
            f"  {a['name']:>10}: {a['episodes_per_s']:6.2f} episodes/s, {a['steps'] / a['seconds']:7.1f} steps/s "
            f"({a['seconds']:.1f} s, cpu stolen {'n/a' if a['stolen'] is None else format(a['stolen'], '.0%')}; "
            f"first pass {a['warmup_seconds']:.1f} s)"
            for a in (one, many, threads)
        ),  # fmt: skip
        f"  same episodes in every arm: {f['identical']:.0%}",
        f"  {many['name']} over 1 process: {f['ratio']:.2f} (each worker is one process on one CPU); over the "
        f"local executor's {f['local_threads']} threads in one process: {f['ratio_over_local']:.2f}",
        "components of R = min(R_env, R_llm, R_driver, M/L):",
        f"  environment: reset {f['reset_s'] * 1e3:.1f} ms, step {f['step_s'] * 1e3:.2f} ms, "
        f"{f['steps_per_episode']:.1f} steps/episode -> R_env {f['r_env_per_process']:.2f} episodes/s per process",
        f"  driver: {f['r_driver_rows_per_s']:.0f} rows stored/s (one row per rollout)",
        f"  episode latency without the engine L_env = {f['episode_latency_s']:.2f} s; "
        "with an engine add steps x its per-request latency, and keep M >= R x L episodes in flight",
        "  engine: requests/s = steps/s of the engine arm of `steca-data bench`",
    ]
