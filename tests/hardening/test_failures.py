"""Failures are never silently final: transient ones are retried within the build, what still fails is
reported, fails the build past ``failures.max_rate``, shows in ``plan`` and is recomputed by the next build.
"""

from __future__ import annotations

import pytest

from steca_data.core.failures import is_transient
from steca_data.envs import EnvError
from tests.chat_server import ChatServer
from tests.conftest import count, run_cli, write_recipe


def test_killing_the_environment_retries_then_fails_then_a_rebuild_recomputes(tmp_path):
    """The JVM is SIGKILLed after 3 stored units and again whenever a fresh one starts (a real crash)."""
    path = write_recipe(tmp_path, name="crash", train=10, failures={"backoff_s": 0})
    crashed = run_cli("build", str(path), "--quiet", env={"STECA_DATA_KILL_ENV_AFTER_UNITS": "3"})
    assert crashed.returncode == 1, crashed.stderr
    assert "Traceback" not in crashed.stderr and "attempt 3 of 3" in crashed.stderr  # retried, with backoff
    last = crashed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: gold: ") and "of 10 units failed" in last and "plan" in last, last
    db = tmp_path / "build" / "cache.duckdb"
    failed = count(db, "select count(*) from failures where stage = 'gold'")
    stored = count(db, "select count(*) from gold_paths")
    assert stored >= 3 and failed == 10 - stored, "nothing computed before the crash is lost"
    assert not (tmp_path / "build" / "dataset").exists(), "a failed build publishes no outputs"

    plan = run_cli("plan", str(path))
    assert plan.returncode == 0, plan.stderr
    assert f"{failed} failed last time, will retry" in plan.stdout

    rebuilt = run_cli("build", str(path), "--quiet")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"gold: {failed} computed, {stored} cached" in rebuilt.stderr
    assert count(db, "select count(*) from failures") == 0
    assert count(db, "select count(*) from trajectories") == 10


def _thought_recipe(tmp_path, server, **failures):
    thoughts = {"backend": "openai", "model": "m", "base_url": server.base_url, "max_retries": 0, "timeout_s": 5.0}
    return write_recipe(
        tmp_path,
        train=3,
        experts={"thoughts": {**thoughts, "max_concurrency": 1}},
        failures={"backoff_s": 0, **failures},
    )


def _numbered(messages: list[dict]) -> str:
    import re

    actions = re.findall(r"^(\d+)\. Action: (.+)$", messages[-1]["content"], flags=re.MULTILINE)
    return "\n".join(f"{n}. Thought: I will {a.strip()}." for n, a in actions)


def test_llm_calls_that_all_fail_fail_the_build(cli, tmp_path):
    with ChatServer(_numbered) as server:
        server.fail_next = 10_000  # every request: HTTP 500
        path = _thought_recipe(tmp_path, server)
        result = cli("build", str(path), "--quiet")
    assert result.code == 1, result.err
    assert "Built" not in result.err and "Traceback" not in result.err
    assert "expert: 3 of 3 units failed" in result.err_lines[-1] and "InternalServerError" in result.err_lines[-1]
    assert len(server.requests) == 3 * 3, "each unit tried failures.attempts times (HTTP 500 is transient)"


def test_a_transient_http_failure_is_retried_within_the_build(cli, tmp_path):
    with ChatServer(_numbered) as server:
        server.fail_next = 2
        path = _thought_recipe(tmp_path, server)
        result = cli("build", str(path), "--quiet")
    assert result.code == 0, result.err
    assert "expert=3" in result.err and "failed" not in result.err.split("Built")[-1]
    assert count(tmp_path / "build" / "cache.duckdb", "select count(*) from failures") == 0


def test_failures_below_max_rate_are_reported_and_retried_next_time(cli, tmp_path):
    with ChatServer(lambda messages: "I refuse.") as server:  # a deterministic failure: not retried in-build
        path = _thought_recipe(tmp_path, server, max_rate=1.0)
        result = cli("build", str(path), "--quiet")
        assert result.code == 0, result.err
        assert "3 failed: expert: ValueError: model gave no usable thoughts" in result.err
        assert len(server.requests) == 3
        again = cli("plan", str(path))
        assert "3 failed last time, will retry" in again.out
        final = cli("plan", str(path), "--set", "failures.retry=false")
        assert "not retried" in final.out


def test_what_counts_as_transient():
    from py4j.protocol import Py4JError, Py4JJavaError, Py4JNetworkError

    assert is_transient(Py4JNetworkError("Answer from Java side is empty"))
    assert is_transient(Py4JError("An error occurred while calling o1.step"))
    assert not is_transient(Py4JJavaError.__new__(Py4JJavaError)), "a Java exception recurs"
    assert is_transient(ConnectionResetError()) and is_transient(TimeoutError())
    assert not is_transient(EnvError("gold path ended without success"))
    assert not is_transient(ValueError("model gave no usable thoughts"))
    wrapped = RuntimeError("episode failed")
    wrapped.__cause__ = ConnectionRefusedError()
    assert is_transient(wrapped)


@pytest.mark.parametrize("status, transient", [(500, True), (503, True), (429, True), (400, False), (404, False)])
def test_http_status_decides(status, transient):
    import httpx
    import openai

    response = httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v1/chat/completions"))
    error = openai.APIStatusError("boom", response=response, body=None)
    assert is_transient(error) is transient
