"""THE episode runner: many episodes in flight at once, each handed on the moment it ends.

Evaluation, Monte Carlo rollouts, explorations and proposals all play episodes the same way. An episode
may start from a prefix of steps (an expert prefix for rollouts), replayed in the environment first and
shown in the prompt history. Each finished episode goes to ``on_done`` at once, on the caller's thread, so
the caller can store it right then and a crash loses nothing finished.

Two schedules, same episodes:

- ``continuous`` (default): an episode's next request goes to the policy the moment its environment step
  returns, and its next environment step runs the moment its reply arrives; environment steps overlap
  generation and no episode waits for the slowest of a batch. Policies that take requests one by one
  (``submit``: vLLM's engine) schedule them at the token level; batch policies are fed by
  ``policies.batching.BatchingPolicy``, which batches whatever is waiting.
- ``lockstep``: every active episode contributes its prompt to one ``generate`` call per step, then all
  environment steps run. Batch composition is a function of the inputs alone (the reference schedule).

A request the policy cannot serve (``PromptTooLong``: its prompt fills the model's context) fails its own
episode only, like an environment failure: the unit is recorded as failed and the rest go on.

Each request carries a seed derived from the episode's seed and step, so an episode's text does not depend
on the schedule wherever the backend's sampling is batch-invariant.
"""

from __future__ import annotations

import hashlib
import json
import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from steca_data.core.prompts import window_messages
from steca_data.core.react import parse_turn
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs.base import EnvSession, SessionPool, StepResult, as_step, remaining_plan
from steca_data.envs.prompting import history_messages, prompt_version
from steca_data.policies.base import Policy, PolicyRequest, PromptTooLong, RequestsRejected, SamplingParams
from steca_data.policies.batching import BatchingPolicy

SCHEDULES = ("continuous", "lockstep")


@dataclass
class PromptConfig:
    """How episode histories become prompts: the same settings training windows were cut with."""

    include_example: bool = True
    history: int | None = None  # last N observations kept (None: all)
    version: str | None = None  # default: the environment plugin's prompt version

    @classmethod
    def from_recipe(cls, recipe) -> PromptConfig:
        return cls(include_example=recipe.prompt.include_example, history=recipe.prompt.history)

    def version_for(self, env: str, game: str) -> str:
        return self.version or prompt_version(env, game)


@dataclass
class EpisodeStart:
    task: Task
    # replayed in the env first; their thoughts/actions appear in the prompt history
    prefix: list[Step] = field(default_factory=list)
    seed: int = 0  # per-episode sampling seed
    max_steps: int | None = None  # this episode's own limit (prefix included); default: the run's


class EpisodeError(RuntimeError):
    """Some episodes could not be played (the environment failed); the others were completed and handed on."""

    def __init__(self, failures: dict[int, BaseException]):
        first = next(iter(failures.values()))
        super().__init__(
            f"{len(failures)} episode(s) failed (environment or prompt); first: {type(first).__name__}: {first}"
        )
        self.failures = failures


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible sampling seed for each step of an episode."""
    return (seed * 1_000_003 + step * 7_919 + 1) % (2**31 - 1)


def unparsable_action(reply: str) -> str:
    """What the environment receives for a reply with no ``Action:``: the reply itself, on one line."""
    flat = " ".join(reply.split())
    return flat[:200] if flat else "(no action)"


@dataclass
class Episode:
    """One episode in flight: its session, its steps so far and the move waiting for the environment."""

    index: int
    start: EpisodeStart
    session: EnvSession
    max_steps: int
    instruction: str = ""
    initial_observation: str = ""
    steps: list[Step] = field(default_factory=list)
    last: StepResult | None = None
    unparsable: int = 0
    move: tuple[str, str] = ("", "")  # (thought, action) sent to the environment, not yet answered
    reads_plan: bool = False  # the policy reads the planner's next action (asked on the environment thread)
    planned: str | None = None  # the planner's next action from the current state, when ``reads_plan``

    @property
    def over(self) -> bool:
        return (self.last is not None and self.last.done) or len(self.steps) >= self.max_steps

    def begin(self) -> Episode:
        """Reset and replay the prefix (runs on an environment thread)."""
        result = self.session.reset(self.start.task)
        self.instruction, self.initial_observation, self.last = self.session.instruction(), result.observation, result
        for step in self.start.prefix[: self.max_steps]:
            self.record(step.thought, step.action, self.session.step(step.action))
            if self.last.done:
                break
        self.plan_next(self.last)
        return self

    def plan_next(self, last: StepResult) -> None:
        """Ask the environment's planner for the next action after ``last``, for policies that read it (called
        on the environment thread, right after the step)."""
        if self.reads_plan and not last.done:
            plan = remaining_plan(self.session)
            self.planned = plan[0] if plan else None

    def record(self, thought: str, action: str, result: StepResult) -> None:
        self.steps.append(as_step(action, result, thought))
        self.last = result

    def request(self, prompt: PromptConfig) -> PolicyRequest:
        task = self.start.task
        messages = history_messages(
            task.env, task.game, self.instruction, self.initial_observation, self.steps, prompt.include_example
        )
        windowed = [{"role": m.role, "content": m.content} for m in window_messages(messages, prompt.history)]
        admissible = list(self.last.admissible) if self.last else []
        seed = step_seed(self.start.seed, len(self.steps))
        return PolicyRequest(messages=windowed, admissible=admissible, seed=seed, plan_action=self.planned)

    def decide(self, reply: str) -> str:
        """Parse a reply into the move to play; an unparsable reply is sent as an (invalid) action."""
        parsed = parse_turn(reply)
        if not parsed.ok:
            self.unparsable += 1
        self.move = (parsed.thought, parsed.action if parsed.ok else unparsable_action(reply))
        return self.move[1]

    def trajectory(self, env_version: str, policy_id: str, params: SamplingParams, prompt, source: str) -> Trajectory:
        task = self.start.task
        ident = json.dumps([policy_id, [s.action for s in self.start.prefix], self.start.seed, repr(params)])
        return Trajectory(
            trajectory_id=f"{source}:{task.task_id}:{hashlib.sha256(ident.encode()).hexdigest()[:12]}",
            source=source,
            task=task,
            instruction=self.instruction,
            initial_observation=self.initial_observation,
            steps=self.steps,
            outcome_reward=self.last.score if self.last else 0.0,
            success=bool(self.last and self.last.success),
            env_name=task.env,
            env_version=env_version,
            policy_id=policy_id,
            prompt_version=prompt.version_for(task.env, task.game),
            constrained_actions=params.constrained,
            thought_source="policy",
            unparsable_actions=self.unparsable,
        )


class _Run:
    """Bookkeeping shared by both schedules: sessions, results, failures and the hand-off of finished ones."""

    def __init__(self, pool, policy, starts, params, max_steps, prompt, on_done, source, follow_up=None):
        self.pool, self.policy, self.starts, self.params = pool, policy, list(starts), params
        self.max_steps, self.prompt, self.on_done, self.source = max_steps, prompt, on_done, source
        self.follow_up = follow_up
        self.out: list[Trajectory | None] = [None] * len(starts)
        self.failures: dict[int, BaseException] = {}
        self.pending = deque(range(len(starts)))
        self.free: list[EnvSession] = []
        self.live: set[int] = set()

    def open(self) -> Episode:
        i = self.pending.popleft()
        session = self.free.pop() if self.free else self.pool.backend.new_session()
        self.live.add(i)
        start = self.starts[i]
        limit = start.max_steps if start.max_steps is not None else self.max_steps
        return Episode(i, start, session, limit, reads_plan=bool(getattr(self.policy, "reads_plan", False)))

    def finish(self, ep: Episode) -> None:
        traj = ep.trajectory(self.pool.backend.version, self.policy.policy_id, self.params, self.prompt, self.source)
        self.out[ep.index] = traj
        self.close(ep)
        if self.on_done is not None:
            self.on_done(ep.index, traj)
        for start in self.follow_up(ep.index, traj) if self.follow_up is not None else ():
            self.starts.append(start)  # joins the run: index len(starts) - 1, played like the others
            self.out.append(None)
            self.pending.append(len(self.starts) - 1)

    def fail(self, ep: Episode, error: BaseException) -> None:
        self.failures[ep.index] = error
        self.close(ep)

    def close(self, ep: Episode) -> None:
        self.live.discard(ep.index)
        self.free.append(ep.session)

    def results(self, sessions: list[EnvSession]) -> list[Trajectory]:
        for session in self.free + sessions:
            session.close()
        if self.failures:
            raise EpisodeError(self.failures)
        return [t for t in self.out if t is not None]


def _play_move(ep: Episode) -> StepResult:
    result = ep.session.step(ep.move[1])
    ep.plan_next(result)
    return result


def _guarded(fn):
    def call(session, item):
        try:
            return fn(item)
        except Exception as exc:  # noqa: BLE001 - one broken episode must not stop the others
            return exc

    return call


def _lockstep(run: _Run, max_active: int) -> list[Episode]:
    active: list[Episode] = []
    while run.pending or active:
        starting = [run.open() for _ in range(min(len(run.pending), max_active - len(active)))]
        for ep, res in zip(starting, run.pool.map(_guarded(Episode.begin), starting), strict=True):
            if isinstance(res, BaseException):
                run.fail(ep, res)
            elif ep.over:
                run.finish(ep)
            else:
                active.append(ep)
        if not active:
            continue
        try:
            replies = run.policy.generate([ep.request(run.prompt) for ep in active], run.params)
        except RequestsRejected as exc:  # those episodes fail alone; the others ask again
            for index, error in exc.errors.items():
                run.fail(active[index], error)
            active = [ep for index, ep in enumerate(active) if index not in exc.errors]
            continue
        if len(replies) != len(active):
            raise RuntimeError(f"policy {run.policy.policy_id} returned {len(replies)} replies for {len(active)}")
        for ep, reply in zip(active, replies, strict=True):
            ep.decide(reply)
        results = run.pool.map(_guarded(_play_move), active)
        still = []
        for ep, res in zip(active, results, strict=True):
            if isinstance(res, BaseException):
                run.fail(ep, res)
                continue
            ep.record(*ep.move, res)
            (run.finish if ep.over else still.append)(ep)
        active = still
    return active


def _continuous(run: _Run, max_active: int) -> list[Episode]:
    events: queue.SimpleQueue = queue.SimpleQueue()  # (kind, episode, result or exception)
    instant = bool(getattr(run.policy, "instant", False))
    submit = run.policy.submit if hasattr(run.policy, "submit") else None
    batching = None if submit or instant else BatchingPolicy(run.policy)
    submit = submit or (batching.submit if batching else None)

    def on_env(kind: str, ep: Episode):
        def done(f) -> None:
            if not f.cancelled():  # cancelled: the run is stopping (its pool dropped queued work); nothing to hand on
                events.put((kind, ep, f.exception() or f.result()))

        return done

    def ask(ep: Episode) -> None:
        if not instant:
            submit(ep.request(run.prompt), run.params).add_done_callback(on_env("reply", ep))
            return
        try:
            events.put(("reply", ep, run.policy.generate([ep.request(run.prompt)], run.params)[0]))
        except Exception as exc:  # noqa: BLE001 - handled as the engine's reply would be
            events.put(("reply", ep, exc))

    def launch() -> None:
        while run.pending and len(run.live) < max_active:
            ep = run.open()
            run.pool.submit(Episode.begin, ep).add_done_callback(on_env("begun", ep))

    try:
        launch()
        while run.live:
            kind, ep, value = events.get()
            if isinstance(value, BaseException):
                if kind == "reply" and not isinstance(value, PromptTooLong):  # the policy failed: none can go on
                    raise value
                run.fail(ep, value)
            elif kind == "reply":
                ep.decide(value)
                run.pool.submit(_play_move, ep).add_done_callback(on_env("stepped", ep))
                continue
            else:
                if kind == "stepped":
                    ep.record(*ep.move, value)
                if not ep.over:
                    ask(ep)
                    continue
                run.finish(ep)
            launch()
    finally:
        if batching is not None:
            batching.close()
    return []


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
    schedule: str = "continuous",
    follow_up: Callable[[int, Trajectory], list[EpisodeStart]] | None = None,
) -> list[Trajectory]:
    """Play every start to the end (done, or ``max_steps`` steps in total, prefix included).

    Returns trajectories in the order of ``starts``. If the environment fails on some episodes, the rest
    are still played and handed to ``on_done``, then ``EpisodeError`` reports the failures. ``follow_up``
    (called after ``on_done``) may return more starts that a finished episode made necessary: they join
    the run at once, numbered after the starts so far.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES} (got {schedule!r})")
    run = _Run(pool, policy, starts, params, max_steps, prompt, on_done, source, follow_up)
    if getattr(policy, "instant", False):  # nothing to batch: a live episode past the threads only holds a session
        max_active = min(max_active, max(1, pool.workers))
    left: list[Episode] = []
    try:
        left = (_continuous if schedule == "continuous" else _lockstep)(run, max_active)
    finally:
        sessions = [ep.session for ep in left]
    return run.results(sessions)
