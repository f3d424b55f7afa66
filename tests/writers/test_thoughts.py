"""Expert thoughts: the offline template, and an OpenAI-compatible model over real HTTP on loopback."""

from __future__ import annotations

import re

import duckdb
import pytest

from steca_data.build.builder import Builder
from steca_data.core.failures import BuildFailed
from steca_data.core.progress import Reporter
from steca_data.recipe.model import load_recipe
from steca_data.writers.thoughts import parse_numbered_thoughts, template_thought
from tests.chat_server import ChatServer


def numbered_reply(messages: list[dict]) -> str:
    """Answer like a model would: one numbered thought per numbered action of the prompt."""
    actions = re.findall(r"^(\d+)\. Action: (.+)$", messages[-1]["content"], flags=re.MULTILINE)
    return "\n".join(f"{n}. Thought: I want to {a.strip()} now." for n, a in actions)


def test_template_thoughts_keep_object_names():
    assert template_thought("twc", "take clean blue T-shirt", "") == (
        "I see the clean blue T-shirt, which is not where it belongs. I will pick it up."
    )
    assert "wardrobe" in template_thought("twc", "put clean blue T-shirt in wardrobe", "")
    assert template_thought("twc", "dance", "") == "Next, I will dance."


def test_environment_rules_come_before_the_generic_verbs():
    from steca_data.writers.reflection import ReflectionRequest, template_reflection

    twx = "textworld_express"
    assert template_thought("coin", "take coin", "", twx) == "There is the coin I was looking for. I will take it."
    assert (
        template_thought("cookingworld", "take red potato", "", twx)
        == "The recipe needs the red potato. I will take it."
    )
    assert template_thought("cookingworld", "take knife from counter", "", twx).startswith("I need the knife, which")
    assert template_thought("twc", "take apple", "", twx) == template_thought("twc", "take apple", "")
    request = ReflectionRequest("cookingworld", "cook", "o", [], "", "eat meal", "o", "take carrot", env=twx)
    assert template_reflection(request).endswith("The recipe needs the carrot. I will take it.")


def test_parse_numbered_thoughts_needs_every_step():
    assert parse_numbered_thoughts("1. a\n2. Thought: b", 2) == ["a", "b"]
    assert parse_numbered_thoughts("1. a", 2) is None


def test_openai_thoughts_over_http_with_retries(tmp_path):
    from tests.conftest import write_recipe

    with ChatServer(numbered_reply, stall_s=2.5) as server:
        server.fail_next = 1  # one HTTP 500, retried by the client
        server.stall_next = 1  # one request past the timeout, retried too
        path = write_recipe(
            tmp_path,
            train=3,
            experts={
                "thoughts": {
                    "backend": "openai",
                    "model": "tiny-test",
                    "base_url": server.base_url,
                    "timeout_s": 1.0,
                    "max_retries": 3,
                    "max_concurrency": 1,
                }
            },
        )
        summary = Builder(load_recipe(path), Reporter(quiet=True)).build()
        assert summary.failed == 0 and summary.computed == 6
        assert len(server.requests) == 3 + 2  # three trajectories, plus the 500 and the stall
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    rows = con.execute("select thought_source, count(*) from trajectories group by 1").fetchall()
    assert rows == [("openai:tiny-test", 3)]
    thoughts = [r[0] for r in con.execute("select thought from steps").fetchall()]
    assert all(t.startswith("I want to ") for t in thoughts)


def test_unusable_replies_are_recorded_as_failures(tmp_path):
    from tests.conftest import write_recipe

    with ChatServer(lambda messages: "I refuse.") as server:
        path = write_recipe(
            tmp_path,
            train=2,
            experts={
                "thoughts": {"backend": "openai", "base_url": server.base_url, "max_retries": 1, "timeout_s": 5.0}
            },
        )
        with pytest.raises(BuildFailed, match="expert: 2 of 2 units failed") as info:
            Builder(load_recipe(path), Reporter(quiet=True)).build()
    summary = info.value.summary  # every thought failed: the build fails, it does not say "Built (expert=0)"
    assert summary.failed == 2 and summary.output is None
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    errors = con.execute("select stage, error from failures").fetchall()
    assert len(errors) == 2 and all(s == "expert" and "no usable thoughts" in e for s, e in errors)
