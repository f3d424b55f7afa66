"""The floor every model must beat: a uniformly random admissible action."""

from __future__ import annotations

import random

from steca_data.core.react import format_turn
from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.ids import RANDOM_POLICY_ID


class RandomPolicy:
    policy_id = RANDOM_POLICY_ID
    instant = True  # answers on the caller's thread: no batching, no episodes in flight beyond the sessions

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        replies = []
        for req in requests:
            rng = random.Random(req.seed if req.seed is not None else params.seed)
            action = rng.choice(req.admissible) if req.admissible else "look around"
            replies.append(format_turn("I will try something.", action))
        return replies
