"""Reflection backends: the offline template, and an OpenAI-compatible model over loopback HTTP."""

from __future__ import annotations

from steca_data.core.schemas import Step
from steca_data.recipe.engine import ReflectionSpec
from steca_data.writers.reflection import (
    OpenAIReflector,
    ReflectionRequest,
    TemplateReflector,
    clean_reflection,
    reflection_prompt,
)
from tests.chat_server import ChatServer

REQUEST = ReflectionRequest(
    game="twc",
    instruction="Your task is to pick up objects, then place them in their usual locations.",
    initial_observation="You are in the kitchen. You see a fridge that is closed and a red apple.",
    history=[Step(thought="I see the red apple.", action="take red apple", observation="You take the red apple.")],
    deviated_thought="The apple goes in the oven.",
    deviated_action="put red apple in oven",
    deviated_observation="You put the red apple in the oven.",
    expert_action="open fridge",
)


def test_prompt_holds_history_deviation_and_ground_truth():
    prompt = reflection_prompt(REQUEST)
    assert "Action: take red apple" in prompt and "Observation: You take the red apple." in prompt
    assert "Action: put red apple in oven" in prompt
    assert "The correct next action is: open fridge" in prompt


def test_template_reflection_leads_to_the_expert_action():
    (outcome,) = TemplateReflector().reflect([REQUEST])
    assert outcome.status == "ok"
    assert "put red apple in oven" in outcome.thought and "fridge" in outcome.thought


def test_clean_reflection_rejects_unusable_replies():
    assert (
        clean_reflection("Thought: That was wrong, the fridge is where it goes.\nAction: open fridge", "open fridge")
        == "That was wrong, the fridge is where it goes."
    )
    assert clean_reflection("", "open fridge") is None
    assert clean_reflection("Thought: open fridge", "open fridge") is None
    assert clean_reflection("x" * 5000, "open fridge") is None


def test_openai_reflector_retries_unusable_then_records_failure():
    replies = iter(
        ["", "Thought: Putting the apple in the oven was a mistake; it belongs in the fridge.", "nope", "nope", "nope"]
    )
    with ChatServer(lambda messages: next(replies)) as server:
        spec = ReflectionSpec(
            backend="openai", model="judge", base_url=server.base_url, max_retries=1, max_concurrency=1, timeout_s=5
        )
        reflector = OpenAIReflector(spec)
        ok, failed = reflector.reflect([REQUEST]), reflector.reflect([REQUEST])
    assert ok[0].status == "ok" and ok[0].attempts == 2 and "fridge" in ok[0].thought
    assert failed[0].status == "failed" and failed[0].attempts == 2 and failed[0].raw_response == "nope"
    assert server.requests[0]["model"] == "judge"


def test_openai_reflector_survives_a_server_error():
    with ChatServer(lambda m: "Thought: The oven was wrong; the fridge keeps food cold.") as server:
        server.fail_next = 1
        spec = ReflectionSpec(backend="openai", base_url=server.base_url, max_retries=2, timeout_s=5)
        (outcome,) = OpenAIReflector(spec).reflect([REQUEST])
    assert outcome.status == "ok" and len(server.requests) == 2


def test_self_reflection_through_the_policy_protocol():
    from steca_data.policies.random_policy import RandomPolicy
    from steca_data.writers.reflection import PolicyReflector

    (outcome,) = PolicyReflector(RandomPolicy(), max_retries=1, temperature=0.0).reflect([REQUEST])
    assert outcome.status == "ok" and outcome.thought == "I will try something."
    assert "The correct next action is: open fridge" in outcome.prompt
