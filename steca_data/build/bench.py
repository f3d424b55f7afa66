"""``steca-data bench``: rollout throughput of the engine against the sequential reference, in one process.

Every arm plays the same rollouts (same tasks, seeds and weights) through the same episode runner:

- ``engine``: the recipe's policy backend (vLLM by default), continuous schedule — each episode's next
  request enters the running batch the moment its environment step returns;
- ``lockstep``: the same backend, all live episodes' step t in one batch, then all environment steps;
- ``reference``: the transformers backend, one rollout at a time, one request per step (what the
  reference implementation does), with the recipe's ``policy.threads``. It plays first: once vLLM starts,
  torch's thread count is vLLM's.

Per arm: rollouts/s, the share of wall time spent generating and stepping environments (they overlap under
the continuous schedule), and the fraction of trajectories identical to the engine's. The last line is
``ratio: X``, engine rollouts/s over the reference's, both measured in this run.

The reference plays one rollout in ``reference_every`` of the same list (a systematic sample: with the
default, one seed of every task). It is sequential, so its wall time is the sum of its rollouts' times and
the sample's rate estimates the whole list's; the engine arms are measured where builds run them, with
hundreds of rollouts in flight, and the bench still takes minutes rather than a quarter of an hour.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

from steca_data.core.cpu import cpu_times, stolen_share
from steca_data.envs import SessionPool

ARMS = (("engine", "continuous"), ("lockstep", "lockstep"), ("reference", "lockstep"))


class BenchError(RuntimeError):
    """The bench cannot run (no build or no base agent yet); the message says what to do."""


@dataclass
class ArmResult:
    name: str
    backend: str
    schedule: str
    rollouts: int
    steps: int
    seconds: float
    policy_s: float
    env_s: float
    identical: float  # fraction of trajectories identical to the engine arm's
    stolen: float | None = None  # share of the CPU time the hypervisor gave other tenants during the arm
    torch_threads: int | None = None  # torch's intra-op threads while the arm ran

    @property
    def rollouts_per_s(self) -> float:
        return self.rollouts / self.seconds

    def as_dict(self) -> dict:
        return asdict(self) | {"rollouts_per_s": self.rollouts_per_s}


class TimedPolicy:
    """Counts the time the backend spends generating (engine steps for vLLM, generate calls otherwise)."""

    def __init__(self, policy):
        self.policy = policy
        self.policy_id = policy.policy_id
        self._own = 0.0
        self._base = getattr(policy, "busy_s", 0.0)
        if hasattr(policy, "submit"):
            self.submit = policy.submit

    @property
    def seconds(self) -> float:
        return self._own + getattr(self.policy, "busy_s", 0.0) - self._base

    def generate(self, requests, params):
        if hasattr(self.policy, "busy_s"):  # the backend times itself
            return self.policy.generate(requests, params)
        start = time.perf_counter()
        try:
            return self.policy.generate(requests, params)
        finally:
            self._own += time.perf_counter() - start


class TimedPool(SessionPool):
    """A session pool that adds up the time spent inside environment calls, on any thread."""

    def __init__(self, backend, workers: int):
        super().__init__(backend, workers)
        self.seconds = 0.0
        self._lock = threading.Lock()

    def _timed(self, fn):
        def call(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                with self._lock:
                    self.seconds += time.perf_counter() - start

        return call

    def submit(self, fn, item):
        return super().submit(self._timed(fn), item)

    def map(self, fn, items):
        return super().map(self._timed(fn), items)


def run_arm(name, policy, backend, starts, params, max_steps, prompt, workers, schedule, max_active):
    import torch

    from steca_data.episodes.runner import run_episodes

    timed = TimedPolicy(policy)
    with TimedPool(backend, workers) as pool:
        start, cpu = time.perf_counter(), cpu_times()
        trajectories = run_episodes(
            pool, timed, starts, params, max_steps, prompt, source="rollout", max_active=max_active, schedule=schedule
        )
        seconds = time.perf_counter() - start
    steps = sum(len(t.steps) - len(s.prefix) for t, s in zip(trajectories, starts, strict=True))
    stolen = stolen_share(cpu, cpu_times())
    arm = ArmResult(name, policy.policy_id.split(":")[0], schedule, len(trajectories), steps, seconds,
                    timed.seconds, pool.seconds, 1.0, stolen, torch.get_num_threads())  # fmt: skip
    return arm, [[(s.thought, s.action) for s in t.steps] for t in trajectories]


def bench_starts(tasks, n: int, seed: int):
    from steca_data.episodes.runner import EpisodeStart

    return [EpisodeStart(task, [], seed=seed + 1000 * i + j) for i, task in enumerate(tasks) for j in range(n)]


def bench_model(recipe, model: str | None) -> str:
    """The weights to measure: ``model`` if given, else the base agent the recipe's build resolved."""
    from steca_data.build.builder import open_build
    from steca_data.stages.agent import AgentHandle, needs_warmup

    if model or recipe.policy.model or not needs_warmup(recipe):
        return model or recipe.policy.model
    if not recipe.cache_path.is_file():
        raise BenchError(f"no build at {recipe.build_dir}: run `steca-data build RECIPE` first (it trains the agent)")
    with open_build(recipe) as ctx:
        agent = ctx.find(AgentHandle)
    if agent is None:
        raise BenchError("the warm-up model of RECIPE is not built yet: run `steca-data build RECIPE` first")
    return agent.model


def _reference_policy(recipe, model: str | None):
    """The transformers backend on the same weights where the recipe's backend plays a local checkpoint
    (else None: the recipe's own backend, one request at a time, is the reference)."""
    from steca_data.policies.ids import LOCAL_PREFIX
    from steca_data.stages.agent import agent_handle

    if recipe.policy.backend not in LOCAL_PREFIX:
        return None
    reference_spec = recipe.policy.model_copy(update={"backend": "transformers", "batch_size": 1})
    return agent_handle(reference_spec, model).policy


def _play(name, policy, backend, starts, params, max_steps, prompt, recipe, schedule, active):
    """One arm from a cold prefix cache, after a short warm-up (first calls are slow)."""
    run_arm("warm-up", policy, backend, starts[:2], params, 2, prompt, recipe.env.workers, "lockstep", 2)
    if hasattr(policy, "reset_prefix_cache"):  # no arm reuses another's cached prompts
        policy.reset_prefix_cache()
    return run_arm(name, policy, backend, starts, params, max_steps, prompt, recipe.env.workers, schedule, active)


def _peers(model, engine_policy, backend, starts, params, max_steps, prompt, recipe):
    """The peers' arm (``build.peers``): the same weights served over HTTP, 32 concurrent episode clients."""
    from steca_data.build.peers import CLIENTS, Clients, served

    if "vllm" in engine_policy.policy_id.split(":")[0]:  # the in-process engine is done: free its CPU for the server
        from steca_data.policies.vllm_policy import shutdown_engines

        shutdown_engines()
    with served(model) as base:
        clients = Clients(base, engine_policy.policy_id)
        try:
            arm, texts = _play("peers", clients, backend, starts, params, max_steps, prompt, recipe, "continuous",
                               CLIENTS)  # fmt: skip
        finally:
            clients.close()
    arm.backend = "vllm server"
    return arm, texts


def run_bench(
    recipe, tasks: int, n: int | None, model: str | None, reference_every: int | None = None, peers: bool = False
) -> tuple[dict, list[ArmResult]]:
    """All arms on the same rollouts (the reference on a systematic sample of them); returns the JSON
    figures and the arms.

    The reference plays first: vLLM, once started, pins torch's thread count, and the reference should run
    with the threads the recipe gives it (``policy.threads``), as it would on its own."""
    from steca_data.build.builder import played_env
    from steca_data.envs.registry import list_tasks, make_backend
    from steca_data.episodes.runner import PromptConfig
    from steca_data.policies.base import sampling_params
    from steca_data.stages.agent import agent_handle

    model = bench_model(recipe, model)
    params = sampling_params(recipe.policy, recipe.rollouts.temperature)
    n = n or recipe.rollouts.n
    env = played_env(recipe)
    starts = bench_starts(list_tasks(env, "train")[:tasks], n, recipe.rollouts.seed)
    every = reference_every or n
    picked = range(0, len(starts), every)  # the reference's systematic sample
    sample = [starts[i] for i in picked]
    max_steps, prompt = recipe.rollouts.max_steps or recipe.env.max_steps, PromptConfig.from_recipe(recipe)
    backend = make_backend(env)
    arms, texts = {}, {}
    try:
        reference_policy = _reference_policy(recipe, model)
        if reference_policy is not None:
            arms["reference"], texts["reference"] = _play(
                "reference", reference_policy, backend, sample, params, max_steps, prompt, recipe, "lockstep", 1
            )
        engine_policy = agent_handle(recipe.policy, model).policy
        for name, schedule in ARMS:
            if name == "reference" and reference_policy is not None:
                continue
            played, active = (sample, 1) if name == "reference" else (starts, len(starts))
            arms[name], texts[name] = _play(
                name, engine_policy, backend, played, params, max_steps, prompt, recipe, schedule, active
            )
        if peers:
            arms["peers"], texts["peers"] = _peers(model, engine_policy, backend, starts, params, max_steps, prompt,
                                                   recipe)  # fmt: skip
    finally:
        backend.close()
    engine_texts = {"engine": texts["engine"], "lockstep": texts["engine"], "peers": texts["engine"]}
    engine_texts["reference"] = [texts["engine"][i] for i in picked]
    for name, arm in arms.items():
        arm.identical = sum(a == b for a, b in zip(texts[name], engine_texts[name], strict=True)) / arm.rollouts
    ordered = [arms[name] for name, _ in ARMS] + ([arms["peers"]] if peers else [])
    figures = {
        "arms": [a.as_dict() for a in ordered],
        "policy_id": engine_policy.policy_id,
        "tasks": tasks,
        "rollouts": len(starts),
        "reference_every": every,
        "ratio": arms["engine"].rollouts_per_s / arms["reference"].rollouts_per_s,
    }
    if peers:
        figures["engine_vs_peers"] = arms["engine"].rollouts_per_s / arms["peers"].rollouts_per_s
    return figures, ordered


def bench_table(figures: dict, arms: list[ArmResult]):
    import os
    import platform

    from rich.table import Table

    machine = platform.processor() or platform.machine()
    table = Table(title=f"rollout throughput · {figures['policy_id']} · {machine}, {os.cpu_count()} cores")
    for col in ("arm", "backend", "schedule", "rollouts", "steps", "seconds", "rollouts/s", "in policy", "in env",
                "identical", "cpu stolen"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("arm", "backend", "schedule") else "right")
    for a in arms:
        table.add_row(
            a.name,
            a.backend,
            a.schedule,
            str(a.rollouts),
            str(a.steps),
            f"{a.seconds:.1f}",
            f"{a.rollouts_per_s:.2f}",
            f"{a.policy_s / a.seconds:.0%}",
            f"{a.env_s / a.seconds:.0%}",
            f"{a.identical:.0%}",
            "n/a" if a.stolen is None else f"{a.stolen:.0%}",
        )
    return table
