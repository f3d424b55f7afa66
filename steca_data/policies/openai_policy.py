"""OpenAI-compatible chat backend: a vLLM server, a hosted model, or anything speaking /v1/chat/completions.

Requests of a batch go out concurrently (``max_concurrency`` threads). Each request is retried with
exponential backoff on server errors, rate limits, connection errors and timeouts; the client's own
retries are off so that the attempts, the backoff and the timeout are exactly what the recipe says.
Constrained actions go through the server's structured outputs (vLLM's ``structured_outputs`` request
field): a regex that bounds the thought and allows only an admissible action after ``Action:``. The
client cannot count the server's tokens, so the budget assumes the worst case of one character per token
for the action too: the Action line is always reached within ``max_new_tokens``.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.grammar import GRAMMAR_OVERHEAD_TOKENS, action_regex
from steca_data.policies.ids import served_policy_id


def structured_outputs(request: PolicyRequest, params: SamplingParams) -> dict | None:
    """The request's structured-output field, or None when unconstrained."""
    if not (params.constrained and request.admissible):
        return None
    budget = params.max_new_tokens - max(len(a) for a in request.admissible) - GRAMMAR_OVERHEAD_TOKENS
    return {"structured_outputs": {"regex": action_regex(request.admissible, budget)}}


class PolicyBackendError(RuntimeError):
    """The endpoint kept failing after every retry."""


class OpenAIPolicy:
    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
    ):
        from openai import OpenAI

        self.model = model
        self.policy_id = served_policy_id(model, base_url)
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.attempts = 0  # total HTTP attempts made, retries included (for tests and logs)
        self.client = OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0)

    @classmethod
    def from_spec(cls, spec) -> OpenAIPolicy:
        return cls(
            spec.model,
            spec.base_url,
            api_key=os.environ.get(spec.api_key_env),
            max_concurrency=spec.max_concurrency,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
        )

    def _retryable(self, exc: Exception) -> bool:
        import openai

        if isinstance(exc, openai.APIStatusError):
            return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
        return isinstance(exc, openai.APIConnectionError | openai.APITimeoutError)

    def _one(self, request: PolicyRequest, params: SamplingParams) -> str:
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            self.attempts += 1
            try:
                response = self.client.chat.completions.create(
                    model=self.model,
                    messages=request.messages,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    max_tokens=params.max_new_tokens,
                    seed=request.seed if request.seed is not None else params.seed,
                    extra_body=structured_outputs(request, params),
                )
                return response.choices[0].message.content or ""
            except Exception as exc:
                if attempt == self.max_retries or not self._retryable(exc):
                    raise PolicyBackendError(
                        f"{self.policy_id}: {type(exc).__name__} after {attempt + 1} attempt(s): {exc}"
                    ) from exc
                time.sleep(min(self.max_backoff_s, delay) * (0.5 + random.random() / 2))
                delay *= 2
        raise AssertionError("unreachable")

    def complete(self, request: PolicyRequest, params: SamplingParams) -> str:
        """One request on the caller's thread (with the retries): for callers that are their own clients."""
        return self._one(request, params)

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, params), requests))
