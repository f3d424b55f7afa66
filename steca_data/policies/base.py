"""The policy protocol: a batch of chat prompts in, one completion per prompt out.

Every backend (local transformers, vLLM in-process, an OpenAI-compatible server, the random floor)
implements ``generate``. The engine batches all pending episodes' prompts of one lock-step into a single
call, so backends should be efficient on batches, not on single prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 96
    constrained: bool = False  # restrict the Action span to the admissible actions
    seed: int | None = None


@dataclass
class PolicyRequest:
    messages: list[dict]  # [{"role": ..., "content": ...}], ending with a user turn
    admissible: list[str] = field(default_factory=list)  # needed for constrained decoding / random policy
    seed: int | None = None  # per-request seed, so a rollout is reproducible whatever its batch
    # the environment planner's next action from this state (None: at the goal or no plan); filled only for
    # policies that declare ``reads_plan = True`` (the eps_expert), since planning costs an environment call
    plan_action: str | None = None


class PromptTooLong(ValueError):
    """One request the policy cannot serve: its prompt fills the model's context. Only that episode fails
    (the unit is recorded as failed); the policy and every other request go on."""


class RequestsRejected(ValueError):
    """Raised by ``generate`` before any work when some prompts of the batch cannot be served: ``errors``
    maps their positions in the batch to the reason. The caller fails those and asks again for the rest."""

    def __init__(self, errors: dict[int, PromptTooLong]):
        super().__init__(f"{len(errors)} request(s) rejected; first: {next(iter(errors.values()))}")
        self.errors = errors


def prompt_too_long(tokens: int, context: int) -> PromptTooLong | None:
    """The error for a prompt of ``tokens`` that leaves no room to generate in ``context``, else None."""
    if tokens < context:
        return None
    return PromptTooLong(
        f"prompt too long: {tokens:,} tokens for a model context of {context:,} (raise model.max_positions "
        "when the build trains the agent, or lower prompt.history)"
    )


class Policy(Protocol):
    """A policy; one that sets ``instant = True`` answers at once on the caller's thread (random, ε-expert):
    the runner asks it inline and keeps no more episodes in flight than it has environment threads, since
    a live episode beyond those only holds a simulator session (ALFWorld's costs a 33 MB library copy)."""

    policy_id: str  # identifies weights + backend; part of every cache key that depends on the policy

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]: ...


# backends whose policies are ``instant`` (answer on the caller's thread), known without loading them
INSTANT_BACKENDS = ("random", "eps_expert")

# backends that can restrict the Action span to the admissible actions (random and eps_expert always pick
# one of them; openai through the server's structured outputs)
CONSTRAINING_BACKENDS = ("transformers", "vllm", "random", "openai", "eps_expert")


def sampling_params(spec, temperature: float | None = None, seed: int | None = None) -> SamplingParams:
    """THE decoding settings from a recipe's ``policy`` section (builds, evaluation and bench alike);
    ``constrained`` is switched off for backends that cannot constrain, so keys never claim it falsely."""
    return SamplingParams(
        temperature=spec.temperature if temperature is None else temperature,
        top_p=spec.top_p,
        max_new_tokens=spec.max_new_tokens,
        constrained=spec.constrained and spec.backend in CONSTRAINING_BACKENDS,
        seed=seed,
    )
