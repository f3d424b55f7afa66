"""The bench's ``peers`` arm: what users run today instead of the engine.

STeCa's and IPR's sampling scripts serve the model through vLLM's OpenAI-compatible server and drive it from
a pool of episode workers (32), each playing one episode at a time and sending one request per step. This
arm does the same on loopback: ``python -m steca_data.serve`` on the engine arm's weights, and 32 episodes in
flight, each sending its next request the moment its environment step returns (32 concurrent clients), with
the engine arm's rollouts and seeds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

CLIENTS = 32


class ServerFailed(RuntimeError):
    """The OpenAI-compatible server did not start; the message holds the end of its log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(model: str, timeout_s: float = 600.0) -> Iterator[str]:
    """vLLM's OpenAI-compatible server for ``model`` on a free loopback port; yields its base URL."""
    port = _free_port()
    # the engine arm's settings (policies.vllm_policy.engine_for), so the arms differ in how they are driven only
    cmd = [sys.executable, "-m", "steca_data.serve", "--model", str(model), "--served-model-name", "bench",
           "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
           "--no-enable-chunked-prefill", "--enable-prefix-caching", "--max-num-seqs", "256", "--block-size", "32",
           "--structured-outputs-config", '{"backend": "guidance"}']  # fmt: skip
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"the server exited: {proc.stderr.read().decode()[-1500:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base}/models", timeout=2)
                break
            if time.monotonic() > deadline:
                raise ServerFailed(f"the server did not answer within {timeout_s:.0f} s")
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Clients:
    """An OpenAI policy driven by ``CLIENTS`` concurrent clients: each request is sent on its own the moment
    its episode asks (no batch waits for another), as the reference scripts' worker processes do."""

    def __init__(self, base_url: str, policy_id: str):
        from steca_data.policies.openai_policy import OpenAIPolicy

        self.openai = OpenAIPolicy("bench", base_url, max_concurrency=CLIENTS, timeout_s=300.0)
        self.policy_id = policy_id  # the weights the server plays (the engine arm's)
        self._pool = ThreadPoolExecutor(max_workers=CLIENTS, thread_name_prefix="client")

    def submit(self, request, params) -> Future:
        return self._pool.submit(self.openai.complete, request, params)

    def generate(self, requests, params) -> list[str]:
        return [f.result() for f in [self.submit(r, params) for r in requests]]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
