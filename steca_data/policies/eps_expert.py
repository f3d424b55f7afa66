"""A controlled agent: the environment planner's action with probability 1 - ε, else a uniformly random one.

Cheap and free of any model, so Monte Carlo values mean something (an ε-expert wins from most states,
and wins less often after a detour) and its error rate is known: what ground-truth studies of the deviation
rule need. Each request draws from its own seed (the episode's seed and step), like every policy, so a
rollout is the same whatever its batch. The planner's action comes with the request (``plan_action``):
the episode runner asks the environment for it because this policy declares ``reads_plan``.
"""

from __future__ import annotations

import random

from steca_data.core.react import format_turn
from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.ids import eps_expert_policy_id

THOUGHT = "I will do this next."  # the same for planned and random moves: the thought gives nothing away


class EpsilonExpertPolicy:
    reads_plan = True
    instant = True  # answers on the caller's thread: no batching, no episodes in flight beyond the sessions

    def __init__(self, epsilon: float):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"policy.epsilon: must be within [0, 1] (got {epsilon})")
        self.epsilon = epsilon
        self.policy_id = eps_expert_policy_id(epsilon)

    def act(self, request: PolicyRequest, params: SamplingParams) -> str:
        """The action for one request: a random draw below ε (or without a plan) picks uniformly."""
        rng = random.Random(request.seed if request.seed is not None else params.seed)
        explore = rng.random() < self.epsilon
        if request.plan_action is not None and not explore:
            return request.plan_action
        return rng.choice(request.admissible) if request.admissible else "look around"

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        return [format_turn(THOUGHT, self.act(req, params)) for req in requests]
