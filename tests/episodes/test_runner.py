"""The batched episode runner: lock-step batches, prefixes, step caps, on_done, unparsable replies counted."""

from __future__ import annotations

from steca_data.core.react import format_turn
from steca_data.core.schemas import Step
from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.random_policy import RandomPolicy


class ScriptedPolicy:
    """Babbles (no Action:) on the first ``babble`` calls of each episode, then picks the first admissible."""

    policy_id = "scripted"

    def __init__(self, babble: int):
        self.babble = babble
        self.calls: list[int] = []  # batch size of each generate call

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        self.calls.append(len(requests))
        out = []
        for r in requests:
            turns = sum(m["role"] == "assistant" for m in r.messages)
            out.append("I am not sure what to do" if turns < self.babble else format_turn("ok", r.admissible[0]))
        return out


def test_unparsable_replies_are_counted_and_answered(env_pool, tiny_recipe):
    tasks = env_pool.backend.tasks("seen")
    policy = ScriptedPolicy(babble=2)
    prompt = PromptConfig(include_example=False, history=None)
    trajs = run_episodes(
        env_pool, policy, [EpisodeStart(t) for t in tasks], SamplingParams(), 5, prompt, schedule="lockstep"
    )
    assert policy.calls[0] == len(tasks)  # one generate call per lock-step, all episodes in it
    for t in trajs:
        assert t.unparsable_actions == 2
        assert [s.valid for s in t.steps[:2]] == [False, False]
        assert "not sure" in t.steps[0].observation.lower()  # the environment answered as usual
        assert t.constrained_actions is False and t.policy_id == "scripted" and t.prompt_version == "twx-v1"
        assert len(t.steps) <= 5


def test_prefix_is_replayed_and_max_steps_caps_the_total(env_pool, tiny_recipe):
    backend = env_pool.backend
    task = backend.tasks("unseen")[0]
    session = backend.new_session()
    gold = backend.gold_actions(session, task)
    session.close()
    prefix = [Step(thought="expert", action=a, observation="(stale)") for a in gold[:1]]
    done = []
    starts = [EpisodeStart(task, prefix=prefix, seed=s) for s in range(6)] + [EpisodeStart(task, prefix=[], seed=9)]
    trajs = run_episodes(
        env_pool,
        RandomPolicy(),
        starts,
        SamplingParams(temperature=1.0),
        3,
        PromptConfig.from_recipe(tiny_recipe),
        on_done=lambda i, t: done.append(i),
        source="rollout",
        max_active=3,  # fewer live episodes than starts: sessions are recycled
    )
    assert sorted(done) == list(range(7)) and len(trajs) == 7
    for t in trajs[:6]:
        assert t.steps[0].action == gold[0] and t.steps[0].thought == "expert"
        assert t.steps[0].observation != "(stale)"  # observations come from the replay
        assert len(t.steps) <= 3 and t.source == "rollout"
    assert trajs[6].steps[0].thought != "expert"
    # same seed, same prefix: same continuation (sampling is reproducible)
    again = run_episodes(env_pool, RandomPolicy(), starts[:1], SamplingParams(temperature=1.0), 3, PromptConfig())
    assert [s.action for s in again[0].steps] == [s.action for s in trajs[0].steps]


class CountingPolicy(RandomPolicy):
    """The random policy, answering in batches (not instant): every start may be in flight at once."""

    instant = False


def test_an_instant_policy_keeps_no_more_episodes_in_flight_than_environment_threads(env_pool, tiny_recipe):
    """Random and ε-expert answer on the runner's thread: a live episode beyond the pool's threads would only
    hold a session (ALFWorld's is a 33 MB library copy); a batching policy keeps up to ``max_active``."""
    backend = env_pool.backend
    tasks = backend.tasks("unseen")
    starts = [EpisodeStart(t, seed=s) for t in tasks for s in range(4)]
    opened = []
    original = backend.new_session
    backend.new_session = lambda: opened.append(1) or original()
    try:
        quick = run_episodes(env_pool, RandomPolicy(), starts, SamplingParams(temperature=1.0), 4, PromptConfig())
        instant_sessions, opened[:] = len(opened), []
        batched = run_episodes(env_pool, CountingPolicy(), starts, SamplingParams(temperature=1.0), 4, PromptConfig())
    finally:
        del backend.new_session
    assert instant_sessions <= env_pool.workers < len(starts)
    assert len(opened) == len(starts)  # all in flight at once
    assert [t.model_dump() for t in quick] == [t.model_dump() for t in batched]  # same episodes either way


def test_schedules_play_the_same_episodes(env_pool, tiny_recipe):
    """Continuous and lock-step scheduling differ only in batching: seeded episodes come out identical,
    and ``on_done`` sees each episode once, in completion order."""
    tasks = env_pool.backend.tasks("unseen")
    starts = [EpisodeStart(t, seed=s) for t in tasks for s in range(3)]
    prompt, params = PromptConfig.from_recipe(tiny_recipe), SamplingParams(temperature=1.0)
    seen: list[int] = []
    runs = {
        schedule: run_episodes(
            env_pool, RandomPolicy(), starts, params, 6, prompt, on_done=lambda i, t: seen.append(i),
            schedule=schedule, max_active=5,
        )
        for schedule in ("continuous", "lockstep")
    }  # fmt: skip
    assert [t.model_dump() for t in runs["continuous"]] == [t.model_dump() for t in runs["lockstep"]]
    assert sorted(seen) == sorted(list(range(len(starts))) * 2)


class ContextLimitedPolicy:
    """A batch policy with a context limit: rejects prompts over ``limit`` characters, answers the rest."""

    policy_id = "context-limited"

    def __init__(self, limit: int):
        self.limit = limit

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        from steca_data.policies.base import RequestsRejected, prompt_too_long

        sizes = [sum(len(m["content"]) for m in r.messages) for r in requests]
        errors = {i: prompt_too_long(n, self.limit) for i, n in enumerate(sizes) if n >= self.limit}
        if errors:
            raise RequestsRejected(errors)
        return [format_turn("ok", r.admissible[0]) for r in requests]


def test_a_rejected_prompt_fails_its_episode_only_through_the_batcher(env_pool, tiny_recipe):
    import pytest

    from steca_data.episodes.runner import EpisodeError
    from steca_data.policies.base import PromptTooLong

    tasks = env_pool.backend.tasks("seen")[:3]
    long_step = Step(thought="x" * 50_000, action="look around", observation="")
    starts = [EpisodeStart(tasks[0], prefix=[long_step]), *(EpisodeStart(t) for t in tasks)]
    done: dict = {}
    for schedule in ("continuous", "lockstep"):
        done.clear()
        with pytest.raises(EpisodeError) as caught:
            run_episodes(env_pool, ContextLimitedPolicy(20_000), starts, SamplingParams(), 4,
                         PromptConfig(include_example=False), on_done=done.__setitem__, schedule=schedule)  # fmt: skip
        assert list(caught.value.failures) == [0] and isinstance(caught.value.failures[0], PromptTooLong)
        assert sorted(done) == [1, 2, 3]
