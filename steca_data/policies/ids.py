"""Policy ids: the one place that says how a policy is named in cache keys.

A policy id names the backend and the exact weights (a content digest of the checkpoint), so every unit a
policy produced is keyed by it and changes when the weights do. Policies report it when loaded, and the
build computes the same string without loading anything (``policy_id``), so a fully cached build never
touches a model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# backends that play a local checkpoint, and the prefix their ids carry
LOCAL_PREFIX = {"transformers": "hf", "vllm": "vllm"}


# written beside a checkpoint but not part of it: a training log holds wall-clock seconds, and hashing it
# would give the same weights a different id on every run
NOT_WEIGHTS = {"train_log.json"}


def model_digest(path: Path) -> str:
    """Short content hash of a checkpoint's config, tokenizer and weights, so cache keys follow the weights."""
    h = hashlib.sha256()
    for f in sorted(path.glob("*")):
        if f.suffix in (".json", ".safetensors", ".bin") and f.is_file() and f.name not in NOT_WEIGHTS:
            h.update(f.name.encode())
            size = f.stat().st_size
            h.update(str(size).encode())
            with f.open("rb") as fh:
                if size <= 256 << 20:
                    h.update(fh.read())
                else:  # large checkpoints: size plus head and tail is enough to tell them apart
                    h.update(fh.read(8 << 20))
                    fh.seek(-(8 << 20), 2)
                    h.update(fh.read())
    return h.hexdigest()[:12]


def local_policy_id(backend: str, path: str | Path) -> str:
    path = Path(path)
    return f"{LOCAL_PREFIX[backend]}:{path.name}:{model_digest(path)}"


def served_policy_id(model: str, base_url: str) -> str:
    return f"openai:{model}@{base_url}"


RANDOM_POLICY_ID = "random"


def eps_expert_policy_id(epsilon: float) -> str:
    return f"eps-expert:{epsilon:g}"


def policy_id(spec, model: str | None = None) -> str:
    """The id ``make_policy(spec, model).policy_id`` will report, without loading any weights."""
    name = model or spec.model
    if spec.backend == "random":
        return RANDOM_POLICY_ID
    if spec.backend == "eps_expert":
        return eps_expert_policy_id(spec.epsilon)
    if spec.backend == "openai":
        return served_policy_id(name, spec.base_url)
    if not name or not Path(name).is_dir():
        raise FileNotFoundError(f"policy.model: no model directory at {name}")
    return local_policy_id(spec.backend, name)
