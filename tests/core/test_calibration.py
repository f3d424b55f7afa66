"""nDTW against hand-computed values, and the deviation rule on constructed reward tables."""

from __future__ import annotations

import math

import pytest

from steca_data.core.calibration import (
    AdaptiveRule,
    _beta_binomial,
    deviated_at_cap,
    first_error_step,
    judge_proposals,
    positions_to_score,
)
from steca_data.core.distance import dtw, edit_distance, exact_distance, ndtw


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (["a", "b", "c"], ["a", "b", "c"], 0.0),
        (["a"], ["b"], 1 / math.sqrt(2)),
        # D = [[0, 1], [1, 1]]: one mismatch on the diagonal, normalised by sqrt(2^2 + 2^2)
        (["a", "b"], ["a", "c"], 1 / math.sqrt(8)),
        # warping absorbs a repeated action: cost 0 although the lengths differ
        (["a", "a", "b"], ["a", "b"], 0.0),
        # no shared action at all: cost = max(n, m) = 3, normalised by sqrt(9 + 4)
        (["a", "b", "c"], ["x", "y"], 3 / math.sqrt(13)),
        ([], ["a", "b"], 1.0),
        ([], [], 0.0),
    ],
)
def test_ndtw_hand_computed(x, y, expected):
    assert ndtw(x, y, exact_distance) == pytest.approx(expected)


def test_ndtw_with_edit_distance_and_bounds():
    assert edit_distance("take apple", "take apples") == pytest.approx(1 / 11)
    assert ndtw(["take apple"], ["take apples"], edit_distance) == pytest.approx((1 / 11) / math.sqrt(2))
    assert dtw(["ab", "cd"], ["ab", "ce"], edit_distance) == pytest.approx(0.5)
    long_x, long_y = [f"a{i}" for i in range(9)], [f"b{i}" for i in range(4)]
    assert 0.0 <= ndtw(long_x, long_y) <= 1.0
    assert ndtw(["a", "b"], ["b", "a"]) == ndtw(["b", "a"], ["a", "b"])


EXPERT = ["a1", "a2", "a3", "a4"]
VALUES = {0: 0.2, 1: 0.4, 2: 0.6, 3: 0.8, 4: 1.0}
PROPOSALS = {1: ("t1", "a1"), 2: ("t2", "x"), 3: ("t3", "y"), 4: ("t4", "a4")}
Q = {2: 0.4, 3: 0.2}


def test_deviation_rule_delta_zero():
    verdicts = {v.step: v for v in judge_proposals(EXPERT, VALUES, PROPOSALS, Q, delta=0.0)}
    assert not verdicts[1].deviated and verdicts[1].reward_proposal == 0.4  # same as expert: Q = V[1]
    assert not verdicts[2].deviated  # 0.4 - 0.4 = 0, not < 0
    assert verdicts[3].deviated and verdicts[3].first  # 0.2 - 0.6 < 0
    assert verdicts[3].reward_expert_prev == 0.6
    assert not verdicts[4].deviated


def test_deviation_rule_larger_delta_moves_the_first_deviation():
    verdicts = {v.step: v for v in judge_proposals(EXPERT, VALUES, PROPOSALS, Q, delta=0.1)}
    assert verdicts[2].deviated and verdicts[2].first
    assert verdicts[3].deviated and not verdicts[3].first
    assert [v.step for v in verdicts.values() if v.first] == [2]


def test_same_action_is_never_deviated_and_missing_values_are_skipped():
    values = {0: 0.9, 1: 0.1}  # the expert's own step looks bad by noise
    verdicts = judge_proposals(["a1", "a2"], values, {1: ("t", "a1"), 2: ("t", "z")}, {}, delta=0.0)
    assert [(v.step, v.deviated) for v in verdicts] == [(1, False)]


def test_positions_to_score_stop_at_the_first_deviation():
    actions = {t: a for t, (_, a) in PROPOSALS.items()}
    differing = {2: "x", 3: "y"}
    # nothing known yet: V[0] for the explorations, and the first differing proposal with its comparison
    assert positions_to_score(EXPERT, actions, {}, {}, 0.0) == ({0, 1}, {2})
    # Q[2] - V[1] = 0: not deviated, so position 3 is needed next; Q[3] - V[2] < 0 stops the walk there
    assert positions_to_score(EXPERT, actions, VALUES, {2: 0.4}, 0.0) == ({0, 1, 2}, {2, 3})
    assert positions_to_score(EXPERT, actions, VALUES, Q, 0.0) == ({0, 1, 2}, {2, 3})
    # a larger delta makes position 2 the first deviation: position 3 is never needed
    assert positions_to_score(EXPERT, differing, VALUES, Q, 0.1) == ({0, 1}, {2})
    # what the positions chosen decide is what judge_proposals decides with every value known
    for delta in (0.0, 0.1, -0.5):
        ks, ts = positions_to_score(EXPERT, actions, VALUES, Q, delta)
        known = judge_proposals(EXPERT, {k: VALUES[k] for k in ks}, PROPOSALS, {t: Q[t] for t in ts}, delta)
        everything = judge_proposals(EXPERT, VALUES, PROPOSALS, Q, delta)
        assert [v.step for v in known if v.first] == [v.step for v in everything if v.first]


def test_first_error_step():
    assert first_error_step(["a", "b", "c"], ["a", "b", "c"]) is None
    assert first_error_step(["a", "b", "c"], ["a", "x", "c"]) == 2
    assert first_error_step(["a", "b", "c"], ["a", "b"]) == 3
    assert first_error_step(["a", "b", "c"], ["a", "b", "c", "d"]) is None
    assert first_error_step(["a"], []) == 1


def test_embedding_distance_with_a_local_model(init_model_dir):
    from steca_data.core.distance import step_distance

    dist = step_distance("embedding", str(init_model_dir))
    assert dist("take red apple", "take red apple") == 0.0
    d = dist("take red apple", "open fridge")
    assert 0.0 < d <= 1.0 and d == dist("open fridge", "take red apple")
    assert 0.0 <= ndtw(["take red apple", "open fridge"], ["open fridge"], dist) <= 1.0


# ----------------------------------------------------------------------------------- adaptive Monte Carlo
def test_adaptive_stops_at_n_min_when_the_verdict_cannot_change():
    rule = AdaptiveRule(n_min=2, n_max=5, confidence=0.95)
    # 2/2 won after the expert prefix, 0/2 after the proposal: "deviated" at N = 5 with probability >= 0.95
    assert rule.stop([1.0] * 5, [0.0] * 5, (2, 2), (5, 5), 0.0) == (2, 2, True)
    assert deviated_at_cap([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], (5, 5), 0.0) == 1.0  # curtailed: exactly certain


def test_adaptive_tie_needs_every_sample_and_matches_fixed_n():
    rule = AdaptiveRule(n_min=2, n_max=5, confidence=0.95)
    # 0 of n against 0 of n (the tiny agent's common case) is "not deviated" at delta 0 only at the cap
    assert rule.stop([0.0] * 5, [0.0] * 5, (2, 2), (5, 5), 0.0) == (5, 5, True)


def test_adaptive_asks_for_one_more_sample_of_each_until_decided():
    rule = AdaptiveRule(n_min=2, n_max=5, confidence=0.95)
    assert rule.stop([], [], (2, 2), (5, 5), 0.0) == (2, 2, False)
    assert rule.stop([0.0, 1.0], [1.0, 0.0], (2, 2), (5, 5), 0.0) == (3, 3, False)
    # the start state has more samples (explorations) and its own floor and cap
    assert rule.stop([0.0] * 4, [0.0] * 2, (4, 2), (6, 5), 0.0) == (5, 3, False)


def test_adaptive_replay_ignores_samples_beyond_the_stop():
    rule = AdaptiveRule(n_min=2, n_max=5, confidence=0.9)
    short = rule.stop([1.0, 1.0], [0.0, 0.0], (2, 2), (5, 5), 0.0)
    assert short == rule.stop([1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0], (2, 2), (5, 5), 0.0)


def test_adaptive_fractional_rewards_are_fractional_counts():
    p = deviated_at_cap([0.5, 0.5], [0.5, 0.5], (4, 4), 0.0)
    assert 0.0 < p < 0.5  # an exact tie stays not deviated unless the proposal falls behind
    assert deviated_at_cap([0.9, 0.8], [0.1, 0.2], (4, 4), 0.0) > deviated_at_cap([0.6, 0.5], [0.4, 0.5], (4, 4), 0.0)
    assert sum(_beta_binomial(7, 1.5, 2.25)) == pytest.approx(1.0)


def test_adaptive_spec_rejects_n_min_above_n_max():
    from pydantic import ValidationError

    from steca_data.recipe.engine import RolloutSpec

    with pytest.raises(ValidationError, match="n_min"):
        RolloutSpec(adaptive={"n_min": 6, "n_max": 5})
    spec = RolloutSpec(n=3, adaptive={"n_min": 2, "n_max": 5})
    assert (spec.floor, spec.cap) == (2, 5)
