"""Policy backends: batched == unbatched greedy, seeded sampling, constrained actions, OpenAI over loopback HTTP."""

from __future__ import annotations

import pytest

from steca_data.core.prompts import window_messages
from steca_data.core.react import parse_turn
from steca_data.envs.prompting import history_messages
from steca_data.episodes.runner import PromptConfig
from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.constrain import ActionConstraint, action_token_ids


@pytest.fixture(scope="module")
def requests_(tiny_recipe, env_pool, tiny_rows):
    """Real prompts from real env states at different depths (so lengths differ and padding matters)."""
    backend = env_pool.backend
    session = backend.new_session()
    prompt = PromptConfig.from_recipe(tiny_recipe)
    out = []
    for k, task in enumerate(backend.tasks("seen") + backend.tasks("unseen")):
        gold = backend.gold_actions(session, task)
        depth = k % 3
        first = session.reset(task)
        instruction = session.instruction()
        from steca_data.core.schemas import Step

        steps, result = [], first
        for action in gold[:depth]:
            result = session.step(action)
            steps.append(Step(thought="", action=action, observation=result.observation))
        messages = history_messages(task.env, task.game, instruction, first.observation, steps, False)
        msgs = [{"role": m.role, "content": m.content} for m in window_messages(messages, prompt.history)]
        out.append(PolicyRequest(messages=msgs, admissible=list(result.admissible), seed=100 + k))
    session.close()
    return out


@pytest.mark.parametrize("prefix_cache", [False, True])
def test_batched_equals_unbatched_greedy(local_policy, requests_, prefix_cache):
    local_policy.prefix_cache = prefix_cache
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    batched = local_policy.generate(requests_, params)
    single = [local_policy.generate([r], params)[0] for r in requests_]
    local_policy.prefix_cache = True
    assert batched == single
    assert all(batched)


def test_sampling_is_seeded_per_request(local_policy, requests_):
    params = SamplingParams(temperature=1.0, max_new_tokens=24)
    forward = local_policy.generate(requests_, params)
    backward = local_policy.generate(requests_[::-1], params)[::-1]
    assert forward == backward  # a request's sample does not depend on its batch position
    reseeded = [PolicyRequest(r.messages, r.admissible, seed=(r.seed or 0) + 1) for r in requests_]
    assert local_policy.generate(reseeded, params) != forward


def test_constrained_actions_are_admissible(local_policy, requests_):
    params = SamplingParams(temperature=1.0, max_new_tokens=40, constrained=True)
    replies = local_policy.generate(requests_, params)
    parsed = [parse_turn(r) for r in replies]
    with_action = [(p, r) for p, r in zip(parsed, requests_, strict=True) if p.ok]
    assert with_action, replies  # the trained model writes the Action: line
    for p, r in with_action:
        assert p.action in r.admissible, (p.action, r.admissible)


def test_action_trie_constraint(tokenizer):
    actions = ["take apple", "take apple pie", "open fridge"]
    end = tokenizer.eos_token_id
    prompt = tokenizer.encode("<|assistant|>", add_special_tokens=False)
    head = tokenizer.encode("Thought: hungry.\nAction:", add_special_tokens=False)
    constraint = ActionConstraint(tokenizer, [actions], len(prompt), end, len(tokenizer))
    import torch

    seq = list(prompt) + head[:-1]
    assert len(constraint(0, torch.tensor(seq))) == len(tokenizer)  # free before "Action:"
    seq.append(head[-1])
    first = set(constraint(0, torch.tensor(seq)))
    assert first == {action_token_ids(tokenizer, a)[0] for a in actions}
    short, longer = action_token_ids(tokenizer, "take apple"), action_token_ids(tokenizer, "take apple pie")
    assert longer[: len(short)] == short
    for tok in short:
        seq.append(tok)
        allowed = constraint(0, torch.tensor(seq))
    assert set(allowed) == {end, longer[len(short)]}  # end here, or go on to "take apple pie"
    seq.append(end)
    assert constraint(0, torch.tensor(seq)) == [end]  # after a full action only end-of-turn remains


# ------------------------------------------------------------------------------------------ OpenAI backend


@pytest.fixture(scope="module")
def server(local_policy):
    from tests.openai_server import ChatServer

    srv = ChatServer(local_policy, "tiny").start()
    yield srv
    srv.stop()


def test_openai_backend_matches_local_greedy(server, local_policy, requests_):
    from steca_data.policies.openai_policy import OpenAIPolicy

    remote = OpenAIPolicy("tiny", server.base_url, max_concurrency=4, timeout_s=10, max_retries=0)
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    assert remote.generate(requests_[:4], params) == local_policy.generate(requests_[:4], params)


def test_openai_backend_retries_500_and_timeout(server, requests_):
    from steca_data.policies.openai_policy import OpenAIPolicy, PolicyBackendError

    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    remote = OpenAIPolicy("tiny", server.base_url, max_concurrency=1, timeout_s=1.0, max_retries=2, backoff_s=0.05)
    expected = remote.generate(requests_[:1], params)

    before = server.requests
    server.fail_next = 1
    assert remote.generate(requests_[:1], params) == expected
    assert server.requests - before == 2  # one 500, then the retry

    before = server.requests
    server.stall_next, server.stall_s = 1, 2.5
    assert remote.generate(requests_[:1], params) == expected
    assert server.requests - before == 2  # one timed out, then the retry

    server.fail_next = 5
    with pytest.raises(PolicyBackendError, match="after 3 attempt"):
        remote.generate(requests_[:1], params)
    server.fail_next = 0


def test_instant_backends_name_exactly_the_instant_policies():
    """The Ray driver reads ``INSTANT_BACKENDS`` (it loads no policy); the runner reads each policy's ``instant``
    attribute. The two must agree, or a worker plays an instant policy with the engine's shard count."""
    import typing

    from steca_data.policies.base import INSTANT_BACKENDS
    from steca_data.policies.eps_expert import EpsilonExpertPolicy
    from steca_data.policies.random_policy import RandomPolicy
    from steca_data.recipe.agent import PolicySpec

    classes = {"random": RandomPolicy, "eps_expert": EpsilonExpertPolicy}
    backends = typing.get_args(PolicySpec.model_fields["backend"].annotation)
    assert set(INSTANT_BACKENDS) <= set(backends)
    for backend in backends:  # the model-backed ones are not importable without their extras: none is instant
        instant = getattr(classes.get(backend), "instant", False)
        assert instant == (backend in INSTANT_BACKENDS), backend
