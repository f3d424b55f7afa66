"""Content keys: how every cached unit is named.

A unit's key hashes everything that determines it (its stage and version, its inputs and the recipe fields
it reads), so a rebuild finds what exists, a killed build resumes, and changing a field recomputes only the
units that read it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from steca_data.core.schemas import Step


def unit_key(stage: str, version: str, **inputs: Any) -> str:
    """Content hash of a unit: stage name and version plus everything it depends on."""
    blob = json.dumps({"stage": stage, "version": version, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def prefix_key(task_id: str, steps: list[Step]) -> str:
    """A trajectory prefix: the task and each step's thought and action (observations follow from them)."""
    return unit_key("prefix", "1", task=task_id, steps=[(s.thought, s.action) for s in steps])


def seed_of(key: str) -> int:
    """A sampling seed derived from a unit's key: the same unit samples the same way in every build."""
    return int(key[:8], 16) % (2**31 - 1)
