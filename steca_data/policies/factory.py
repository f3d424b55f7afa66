"""Build the policy a recipe's ``policy`` section names (importing only that backend)."""

from __future__ import annotations

from steca_data.policies.base import Policy


def make_policy(spec, model: str | None = None) -> Policy:
    """``model`` (a path or served name) overrides ``spec.model``; ``random`` and ``eps_expert`` need neither."""
    name = model or spec.model
    if spec.backend == "random":
        from steca_data.policies.random_policy import RandomPolicy

        return RandomPolicy()
    if spec.backend == "eps_expert":
        from steca_data.policies.eps_expert import EpsilonExpertPolicy

        return EpsilonExpertPolicy(spec.epsilon)
    if spec.backend == "openai":
        from steca_data.policies.openai_policy import OpenAIPolicy

        return OpenAIPolicy.from_spec(spec.model_copy(update={"model": name}))
    if not name:
        raise ValueError(f"policy.model: a model path is required for backend {spec.backend!r}")
    from steca_data.policies.weights import check_model_dir

    check_model_dir(name)  # a damaged checkpoint is named here, not by the engine that trips over it
    if spec.backend == "vllm":
        from steca_data.policies.vllm_policy import VLLMPolicy

        return VLLMPolicy(name, dtype=spec.dtype)
    from steca_data.policies.transformers_policy import TransformersPolicy

    return TransformersPolicy(
        name,
        device=spec.device,
        dtype=spec.dtype,
        batch_size=spec.batch_size,
        prefix_cache=spec.prefix_cache,
        threads=spec.threads,
    )
