"""The pure parts of STeCa's calibration: the deviation rule and the first error of an exploration.

Positions are 1-based like the paper: a_t is the t-th expert action, V[k] the Monte Carlo value of the
expert prefix of length k (V[0]: the start state), and the proposal at position t is the agent's action
from the prefix e_{1:t-1}. The proposal at t is *deviated* when

    r_s(s_{t-1}, â_t) - r_s(s_{t-2}, a_{t-1}) < delta,   i.e.   Q[t] - V[t-1] < delta,

it differs from the expert action, and both values are known. Only the first deviated position of a task
is calibrated.
"""

from __future__ import annotations

import math
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


# ----------------------------------------------------------------------------------- adaptive Monte Carlo
@dataclass(frozen=True)
class AdaptiveRule:
    """When a deviation verdict needs no more rollouts (``rollouts.adaptive``).

    The reference is the fixed-N verdict: Q[t] - V[t-1] < delta with every value the mean of ``cap``
    rollouts. After each round the rule asks how likely that verdict is to come out the same as the one the
    rollouts so far give — the *predictive* probability under a Beta posterior per prefix (uniform prior;
    a fractional reward r counts as r successes and 1 - r failures), with each rollout still to come drawn as
    a Bernoulli success (the most spread reward in [0, 1] with that mean, so the rule is conservative for
    fractional rewards). It stops when that probability reaches ``confidence``, or when no outcome of the
    remaining rollouts can change the verdict (probability exactly 1: curtailment), or at the caps.

    Why predictive rather than a posterior on the true rates or a sequential test (SPRT): what a user of
    adaptive sampling gives up is agreement with the N they would otherwise have paid for, so the rule bounds
    exactly that; it is exact at the cap; and it needs no indifference zone, where an SPRT on p_P - p_E < delta
    would never stop on the common tie (both prefixes 0 of n).
    """

    n_min: int
    n_max: int
    confidence: float

    def stop(
        self, expert: list[float], proposal: list[float], floors: tuple[int, int], caps: tuple[int, int], delta: float
    ) -> tuple[int, int, bool]:
        """How many of the stored rewards (by sample index) of the expert prefix V[t-1] and the proposal Q[t]
        the verdict uses, and whether it is settled; unsettled counts are the rollouts to have next.

        Replays the rounds from the floors, one more sample of each per round, so the answer depends on the
        stored rewards alone: a build that stored more (a fixed-N build sharing the cache) gives the same one.
        """
        a, b = floors
        while True:
            if len(expert) < a or len(proposal) < b:
                return a, b, False
            if (a, b) == caps or self.decided(expert[:a], proposal[:b], caps, delta):
                return a, b, True
            a, b = min(a + 1, caps[0]), min(b + 1, caps[1])

    def decided(self, expert: list[float], proposal: list[float], caps: tuple[int, int], delta: float) -> bool:
        """The verdict of the means so far equals the fixed-N one with probability >= confidence."""
        now = _mean(proposal) - _mean(expert) < delta
        p = deviated_at_cap(expert, proposal, caps, delta)
        return (p if now else 1.0 - p) >= self.confidence


def deviated_at_cap(expert: list[float], proposal: list[float], caps: tuple[int, int], delta: float) -> float:
    """P(the verdict with ``caps`` rollouts each is "deviated"), the rollouts still to come drawn from the
    Beta-binomial predictive of each prefix (uniform prior, fractional rewards as fractional counts)."""
    se, sp = math.fsum(expert), math.fsum(proposal)
    me, mp = caps[0] - len(expert), caps[1] - len(proposal)
    pe = _beta_binomial(me, 1.0 + se, 1.0 + len(expert) - se)
    pp = _beta_binomial(mp, 1.0 + sp, 1.0 + len(proposal) - sp)
    outcomes = [(i, j) for i in range(me + 1) for j in range(mp + 1)]
    hits = [(i, j) for i, j in outcomes if (sp + j) / caps[1] - (se + i) / caps[0] < delta]
    if len(hits) in (0, len(outcomes)):
        return float(bool(hits))  # curtailed: no outcome to come changes the verdict (exact, no rounding)
    return math.fsum(pe[i] * pp[j] for i, j in hits)


def _beta_binomial(m: int, a: float, b: float) -> list[float]:
    """pmf of the number of successes in m Bernoulli draws whose rate has a Beta(a, b) posterior."""
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return [
        math.exp(
            math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1)
            + math.lgamma(k + a) + math.lgamma(m - k + b) - math.lgamma(m + a + b) - log_norm
        )
        for k in range(m + 1)
    ]  # fmt: skip


def _mean(rewards: list[float]) -> float:
    return math.fsum(rewards) / len(rewards)
