"""Reflections: a thought that notices the deviated action and leads back to the expert action.

Backends: an OpenAI-compatible chat model (the paper's GPT-4o), the base agent itself (the paper's
self-generation ablation) and a deterministic template for offline runs. Every attempt's prompt and raw
response is kept; unusable answers are retried, then recorded as failed, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from steca_data.core.react import format_observation, format_turn
from steca_data.core.schemas import Step
from steca_data.writers.thoughts import template_thought

if TYPE_CHECKING:  # recipe sections are a higher layer: used for type hints only
    from steca_data.recipe.engine import ReflectionSpec

REFLECTION_PROMPT_VERSION = "reflect-v1"

REFLECTION_PROMPT = """You are helping an agent that acts in a text-based environment learn from a mistake.

Task: {instruction}
{initial}
{history}
The agent's last step was a mistake:
{deviated}
{deviated_observation}

The correct next action is: {expert_action}

Write the agent's next thought. It must notice that the last action was a mistake (briefly say why, using \
only what the agent has seen) and reason its way to the correct action. Do not name any other action. \
Answer in the same format as the agent's thoughts, one short paragraph:
Thought: <the reflective thought>"""


@dataclass(frozen=True)
class ReflectionRequest:
    game: str
    instruction: str
    initial_observation: str
    history: list[Step]  # expert steps e_{1:t-1}
    deviated_thought: str
    deviated_action: str
    deviated_observation: str
    expert_action: str
    env: str | None = None  # the task's environment, whose own thought rules the template tries first


@dataclass
class ReflectionOutcome:
    prompt: str
    raw_response: str
    thought: str
    status: str  # ok | failed
    attempts: int


def reflection_prompt(req: ReflectionRequest) -> str:
    history = "\n".join(f"{format_turn(s.thought, s.action)}\n{format_observation(s.observation)}" for s in req.history)
    return REFLECTION_PROMPT.format(
        instruction=req.instruction,
        initial=format_observation(req.initial_observation),
        history=history,
        deviated=format_turn(req.deviated_thought, req.deviated_action),
        deviated_observation=format_observation(req.deviated_observation),
        expert_action=req.expert_action,
    )


def clean_reflection(text: str, expert_action: str) -> str | None:
    """The thought part of a reply, or None when the reply is unusable (empty, runaway, no thought)."""
    body = text.strip()
    if "Thought:" in body:
        body = body.split("Thought:", 1)[1]
    body = body.split("Action:", 1)[0].strip()
    if len(body) < 8 or len(body) > 1200 or body.lower() == expert_action.lower():
        return None
    return " ".join(body.split())


def template_reflection(req: ReflectionRequest, style: str = "notice") -> str:
    """The expert action's template thought after a sentence that turns away from the deviated action."""
    follow = template_thought(req.game, req.expert_action, req.deviated_observation, req.env)
    follow = f"{follow[0].upper()}{follow[1:]}"
    if style == "brief":
        return f"That did not help. {follow}"
    return f"Wait, {req.deviated_action} did not bring me closer to finishing the task. {follow}"


class TemplateReflector:
    name = "template"
    model = REFLECTION_PROMPT_VERSION

    def __init__(self, style: str = "notice"):
        self.style = style

    def reflect(self, requests: list[ReflectionRequest]) -> list[ReflectionOutcome]:
        outcomes = []
        for req in requests:
            text = template_reflection(req, self.style)
            outcomes.append(ReflectionOutcome(reflection_prompt(req), text, text, "ok", 1))
        return outcomes


class _RetryingReflector:
    """Shared retry loop: ask, clean, retry the unusable ones, record failures."""

    max_retries: int

    def _ask(self, prompts: list[str], attempt: int) -> list[str]:
        raise NotImplementedError

    def reflect(self, requests: list[ReflectionRequest]) -> list[ReflectionOutcome]:
        prompts = [reflection_prompt(r) for r in requests]
        outcomes: list[ReflectionOutcome | None] = [None] * len(requests)
        raws = [""] * len(requests)
        todo = list(range(len(requests)))
        for attempt in range(1, self.max_retries + 2):
            if not todo:
                break
            replies = self._ask([prompts[i] for i in todo], attempt)
            still = []
            for i, reply in zip(todo, replies, strict=True):
                raws[i] = reply
                thought = clean_reflection(reply, requests[i].expert_action)
                if thought is None:
                    still.append(i)
                else:
                    outcomes[i] = ReflectionOutcome(prompts[i], reply, thought, "ok", attempt)
            todo = still
        for i in todo:
            outcomes[i] = ReflectionOutcome(prompts[i], raws[i], "", "failed", self.max_retries + 1)
        return [o for o in outcomes if o is not None]


class OpenAIReflector(_RetryingReflector):
    name = "openai"

    def __init__(self, spec: ReflectionSpec):
        from steca_data.writers.openai_client import openai_client

        self.spec = spec
        self.model = spec.model
        self.max_retries = spec.max_retries
        self.client = openai_client(spec, "reflection")

    def _one(self, prompt: str) -> str:
        try:
            response = self.client.chat.completions.create(
                model=self.spec.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=self.spec.temperature,
            )
            return response.choices[0].message.content or ""
        except Exception as exc:  # noqa: BLE001 - an exhausted request is an unusable reply, recorded
            return f"(request failed: {type(exc).__name__}: {exc})"

    def _ask(self, prompts: list[str], attempt: int) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.spec.max_concurrency) as pool:
            return list(pool.map(self._one, prompts))


class PolicyReflector(_RetryingReflector):
    """The base agent writes its own reflection (the paper's self-generation ablation)."""

    name = "self"

    def __init__(self, policy, max_retries: int, temperature: float, seed: int = 0):
        from steca_data.policies.base import SamplingParams

        self.policy = policy
        self.model = policy.policy_id
        self.max_retries = max_retries
        self.seed = seed
        self.params = SamplingParams(temperature=temperature, max_new_tokens=96)

    def _ask(self, prompts: list[str], attempt: int) -> list[str]:
        from steca_data.policies.base import PolicyRequest, SamplingParams

        params = self.params if attempt == 1 else SamplingParams(temperature=1.0, max_new_tokens=96)
        requests = [
            PolicyRequest(messages=[{"role": "user", "content": p}], seed=self.seed + attempt * 7919 + i)
            for i, p in enumerate(prompts)
        ]
        return self.policy.generate(requests, params)
