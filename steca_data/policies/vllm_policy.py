"""vLLM in-process backend (GPU machines only; ``pip install steca-data[vllm]``).

vLLM is imported only when this backend is chosen: its PyPI wheels need CUDA torch. Batches go to
``LLM.chat`` in one call; per-request seeds go into each request's ``SamplingParams``. Constrained
actions use vLLM's guided decoding with a regular expression that leaves the thought free and allows
only the admissible actions after ``Action:``. Not exercised by the CPU test suite.
"""

from __future__ import annotations

import re

from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.ids import local_policy_id


def action_regex(admissible: list[str]) -> str:
    """``Thought: <free line>\\nAction: <one admissible action>`` as a regex for guided decoding."""
    choices = "|".join(re.escape(a) for a in sorted(admissible, key=len, reverse=True))
    return rf"Thought: [^\n]*\nAction: ({choices})"


class VLLMPolicy:
    def __init__(self, path: str, dtype: str = "auto", gpu_memory_utilization: float = 0.85, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - GPU machines only
            raise ImportError(
                "policy.backend 'vllm' needs vLLM (GPU machines only): pip install 'steca-data[vllm]'"
            ) from exc
        self.llm = LLM(
            model=path,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,  # the shared system prompt is computed once
            **engine_kwargs,
        )
        self.policy_id = local_policy_id("vllm", path)

    def _params(self, request: PolicyRequest, params: SamplingParams):  # pragma: no cover - GPU only
        import vllm

        kwargs = dict(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=request.seed if request.seed is not None else params.seed,
        )
        if params.constrained and request.admissible:
            regex = action_regex(request.admissible)
            if hasattr(vllm.sampling_params, "StructuredOutputsParams"):  # vLLM >= 0.10.2
                kwargs["structured_outputs"] = vllm.sampling_params.StructuredOutputsParams(regex=regex)
            else:
                kwargs["guided_decoding"] = vllm.sampling_params.GuidedDecodingParams(regex=regex)
        return vllm.SamplingParams(**kwargs)

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:  # pragma: no cover
        if not requests:
            return []
        outputs = self.llm.chat(
            [r.messages for r in requests],
            sampling_params=[self._params(r, params) for r in requests],
            use_tqdm=False,
        )
        return [o.outputs[0].text.strip() for o in outputs]
