"""The pure parts of STeCa's calibration: the deviation rule and the first error of an exploration.

Positions are 1-based like the paper: a_t is the t-th expert action, V[k] the Monte Carlo value of the
expert prefix of length k (V[0]: the start state), and the proposal at position t is the agent's action
from the prefix e_{1:t-1}. The proposal at t is *deviated* when

    r_s(s_{t-1}, â_t) - r_s(s_{t-2}, a_{t-1}) < delta,   i.e.   Q[t] - V[t-1] < delta,

it differs from the expert action, and both values are known. Only the first deviated position of a task
is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    step: int
    expert_action: str
    proposed_action: str
    proposed_thought: str
    reward_proposal: float
    reward_expert_prev: float
    deviated: bool
    first: bool


def judge_proposals(
    expert_actions: list[str],
    expert_values: dict[int, float],
    proposals: dict[int, tuple[str, str]],
    proposal_values: dict[int, float],
    delta: float,
) -> list[Verdict]:
    """A verdict per position that has a proposal and both values; ``first`` marks the calibrated one.

    A proposal equal to the expert action is never deviated: there is nothing to calibrate towards.
    """
    verdicts: list[Verdict] = []
    found_first = False
    for t in range(1, len(expert_actions) + 1):
        if t not in proposals or (t - 1) not in expert_values:
            continue
        thought, action = proposals[t]
        same = action.strip() == expert_actions[t - 1].strip()
        q = expert_values.get(t) if same else proposal_values.get(t)
        if q is None:
            continue
        deviated = not same and (q - expert_values[t - 1]) < delta
        first = deviated and not found_first
        found_first = found_first or deviated
        verdicts.append(Verdict(t, expert_actions[t - 1], action, thought, q, expert_values[t - 1], deviated, first))
    return verdicts


def positions_to_score(
    expert_actions: list[str],
    proposed_actions: dict[int, str],
    expert_values: dict[int, float],
    proposal_values: dict[int, float],
    delta: float,
) -> tuple[set[int], set[int]]:
    """The expert prefixes k and proposal positions t whose values decide the first deviation, given the
    values known so far: V[0] (the explorations), then, for each proposal that differs from the expert in
    order, Q[t] and V[t-1] — stopping at the first deviated one, or at the first whose values are not known
    yet (the next round of rollouts decides it). Mirrors ``judge_proposals``: positions without a
    proposal and proposals equal to the expert action are passed over."""
    expert_ks, proposal_ts = {0}, set()
    for t in range(1, len(expert_actions) + 1):
        action = proposed_actions.get(t)
        if action is None or action.strip() == expert_actions[t - 1].strip():
            continue
        expert_ks.add(t - 1)
        proposal_ts.add(t)
        if (t - 1) not in expert_values or t not in proposal_values:
            break
        if proposal_values[t] - expert_values[t - 1] < delta:
            break
    return expert_ks, proposal_ts


def first_error_step(expert_actions: list[str], agent_actions: list[str]) -> int | None:
    """1-based position of the first agent action that differs from the expert's; None if none differs
    within the expert's length (the agent followed the expert, possibly taking extra steps after)."""
    for t, (e, a) in enumerate(zip(expert_actions, agent_actions, strict=False), 1):
        if e.strip() != a.strip():
            return t
    if len(agent_actions) < len(expert_actions):
        return len(agent_actions) + 1
    return None
