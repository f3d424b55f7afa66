"""THE batched episode runner: many episodes in lock-step, one policy call per lock-step.

Evaluation, Monte Carlo rollouts and explorations all play episodes the same way: every active episode
contributes its prompt to one ``policy.generate`` batch, the environment steps run in the pool's threads,
and each episode is handed to ``on_done`` the moment it ends (so the caller can store it right then and a
crash loses nothing finished). Episodes may start from a prefix of steps (an expert prefix for rollouts):
the prefix is replayed in the environment first and appears in the prompt history.

Each episode owns a simulator session for its lifetime (TWX sessions are cheap objects on one JVM);
at most ``max_active`` episodes are live at once and finished episodes' sessions are reused.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from steca_data.core.prompts import PROMPT_VERSIONS, history_messages, window_messages
from steca_data.core.react import parse_turn
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs.base import EnvSession, SessionPool, StepResult
from steca_data.policies.base import Policy, PolicyRequest, SamplingParams


@dataclass
class PromptConfig:
    """How episode histories become prompts: the same settings training windows were cut with."""

    include_example: bool = True
    history: int | None = None  # last N observations kept (None: all)
    version: str | None = None  # default PROMPT_VERSIONS[env]

    @classmethod
    def from_recipe(cls, recipe) -> PromptConfig:
        return cls(include_example=recipe.prompt.include_example, history=recipe.prompt.history)

    def version_for(self, env: str) -> str:
        return self.version or PROMPT_VERSIONS.get(env, "custom")


@dataclass
class EpisodeStart:
    task: Task
    # replayed in the env first; their thoughts/actions appear in the prompt history
    prefix: list[Step] = field(default_factory=list)
    seed: int = 0  # per-episode sampling seed


class EpisodeError(RuntimeError):
    """Some episodes could not be played (the environment failed); the others were completed and handed on."""

    def __init__(self, failures: dict[int, BaseException]):
        first = next(iter(failures.values()))
        super().__init__(
            f"{len(failures)} episode(s) failed in the environment; first: {type(first).__name__}: {first}"
        )
        self.failures = failures


@dataclass
class _Episode:
    index: int
    start: EpisodeStart
    session: EnvSession
    instruction: str = ""
    initial_observation: str = ""
    steps: list[Step] = field(default_factory=list)
    last: StepResult | None = None
    unparsable: int = 0

    @property
    def finished(self) -> bool:
        return self.last is not None and self.last.done


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible sampling seed for each step of an episode."""
    return (seed * 1_000_003 + step * 7_919 + 1) % (2**31 - 1)


def unparsable_action(reply: str) -> str:
    """What the environment receives for a reply with no ``Action:``: the reply itself, on one line."""
    flat = " ".join(reply.split())
    return flat[:200] if flat else "(no action)"


def run_episodes(
    pool: SessionPool,
    policy: Policy,
    starts: list[EpisodeStart],
    params: SamplingParams,
    max_steps: int,
    prompt: PromptConfig,
    on_done: Callable[[int, Trajectory], None] | None = None,
    source: str = "rollout",
    max_active: int = 256,
) -> list[Trajectory]:
    """Play every start to the end (done, or ``max_steps`` steps in total, prefix included).

    Returns trajectories in the order of ``starts``. If the environment fails on some episodes, the rest
    are still played and handed to ``on_done``, then ``EpisodeError`` reports the failures.
    """
    backend = pool.backend
    out: list[Trajectory | None] = [None] * len(starts)
    failures: dict[int, BaseException] = {}
    pending = deque(range(len(starts)))
    free: list[EnvSession] = []
    active: list[_Episode] = []

    def begin(_thread_session, ep: _Episode):
        result = ep.session.reset(ep.start.task)
        ep.instruction, ep.initial_observation, ep.last = ep.session.instruction(), result.observation, result
        for step in ep.start.prefix[:max_steps]:
            result = ep.session.step(step.action)
            ep.steps.append(_step(step.thought, step.action, result))
            ep.last = result
            if result.done:
                break
        return ep

    def act(_thread_session, item: tuple[_Episode, str]):
        ep, action = item
        return ep.session.step(action)

    def finish(ep: _Episode) -> None:
        traj = _trajectory(ep, backend.version, policy.policy_id, params, prompt, source)
        out[ep.index] = traj
        free.append(ep.session)
        if on_done is not None:
            on_done(ep.index, traj)

    def guarded(fn):
        def call(session, item):
            try:
                return fn(session, item)
            except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the batch
                return exc

        return call

    try:
        while pending or active:
            # refill the lock-step batch
            starting = []
            while pending and len(active) + len(starting) < max_active:
                i = pending.popleft()
                session = free.pop() if free else backend.new_session()
                starting.append(_Episode(i, starts[i], session))
            for ep, res in zip(starting, pool.map(guarded(begin), starting), strict=True):
                if isinstance(res, BaseException):
                    failures[ep.index] = res
                    free.append(ep.session)
                elif ep.finished or len(ep.steps) >= max_steps:
                    finish(ep)
                else:
                    active.append(ep)
            if not active:
                continue
            requests = [
                PolicyRequest(
                    messages=_prompt(ep, prompt),
                    admissible=list(ep.last.admissible) if ep.last else [],
                    seed=step_seed(ep.start.seed, len(ep.steps)),
                )
                for ep in active
            ]
            replies = policy.generate(requests, params)
            if len(replies) != len(active):
                raise RuntimeError(f"policy {policy.policy_id} returned {len(replies)} replies for {len(active)}")
            moves = []
            for ep, reply in zip(active, replies, strict=True):
                parsed = parse_turn(reply)
                if parsed.ok:
                    moves.append((ep, parsed.thought, parsed.action))
                else:
                    ep.unparsable += 1
                    moves.append((ep, parsed.thought, unparsable_action(reply)))
            results = pool.map(guarded(act), [(ep, action) for ep, _, action in moves])
            still = []
            for (ep, thought, action), res in zip(moves, results, strict=True):
                if isinstance(res, BaseException):
                    failures[ep.index] = res
                    continue
                ep.steps.append(_step(thought, action, res))
                ep.last = res
                if res.done or len(ep.steps) >= max_steps:
                    finish(ep)
                else:
                    still.append(ep)
            active = still
    finally:
        for session in free:
            session.close()
        for ep in active:
            ep.session.close()
    if failures:
        raise EpisodeError(failures)
    return [t for t in out if t is not None]


def _step(thought: str, action: str, result: StepResult) -> Step:
    return Step(
        thought=thought,
        action=action,
        observation=result.observation,
        reward=result.score,
        done=result.done,
        valid=result.valid,
    )


def _prompt(ep: _Episode, prompt: PromptConfig) -> list[dict]:
    task = ep.start.task
    messages = history_messages(
        task.env, task.game, ep.instruction, ep.initial_observation, ep.steps, prompt.include_example
    )
    return [{"role": m.role, "content": m.content} for m in window_messages(messages, prompt.history)]


def _trajectory(
    ep: _Episode, env_version: str, policy_id: str, params: SamplingParams, prompt: PromptConfig, source: str
) -> Trajectory:
    task = ep.start.task
    ident = json.dumps([policy_id, [s.action for s in ep.start.prefix], ep.start.seed, repr(params)])
    last = ep.last
    return Trajectory(
        trajectory_id=f"{source}:{task.task_id}:{hashlib.sha256(ident.encode()).hexdigest()[:12]}",
        source=source,
        task=task,
        instruction=ep.instruction,
        initial_observation=ep.initial_observation,
        steps=ep.steps,
        outcome_reward=last.score if last else 0.0,
        success=bool(last and last.success),
        env_name=task.env,
        env_version=env_version,
        policy_id=policy_id,
        prompt_version=prompt.version_for(task.env),
        constrained_actions=params.constrained,
        thought_source="policy",
        unparsable_actions=ep.unparsable,
    )
