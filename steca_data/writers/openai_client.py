"""One way to make an ``openai`` client from a recipe section, shared by thoughts and reflections."""

from __future__ import annotations

import os


def openai_client(spec, section: str):
    """Client for ``spec`` (base_url, api_key_env, timeout_s, max_retries); the client retries 5xx and
    timeouts with backoff. Local OpenAI-compatible servers (vLLM) accept any key, so a missing key is an
    error only when no base_url points at one."""
    from openai import OpenAI

    api_key = os.environ.get(spec.api_key_env)
    if not api_key:
        if spec.base_url is None:
            raise RuntimeError(
                f"{section}.backend is 'openai' but ${spec.api_key_env} is not set "
                f"(set it, or point {section}.base_url at a local server)"
            )
        api_key = "EMPTY"
    return OpenAI(api_key=api_key, base_url=spec.base_url, timeout=spec.timeout_s, max_retries=spec.max_retries)
