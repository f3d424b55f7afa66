"""The calibration analysis's cases: the first base-agent proposal that STeCa's Monte Carlo rule judges
deviated, on real twc walks with the session's trained tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def walked(tiny_recipe, env_pool, local_policy):
    from steca_data.envs.registry import list_tasks
    from steca_train.recovery import expert_walks, greedy_proposals

    recipe = tiny_recipe.model_copy(
        update={"rollouts": tiny_recipe.rollouts.model_copy(update={"n": 2, "max_steps": 8})}
    )
    backend = env_pool.backend
    walks = expert_walks(recipe, list_tasks(recipe.env, "unseen")[:4], backend)
    proposals = greedy_proposals(recipe, local_policy, walks, backend, 32)
    return recipe, backend, walks, proposals


def _with_delta(recipe, delta: float):
    return recipe.model_copy(update={"deviation": recipe.deviation.model_copy(update={"delta": delta})})


def test_the_monte_carlo_rule_judges_differing_proposals_by_their_values(walked, local_policy):
    from steca_train.recovery import _differing, first_deviations

    recipe, backend, walks, proposals = walked
    differing = {i: _differing(w, proposals, i) for i, w in enumerate(walks)}
    assert any(differing.values()), "the tiny agent leaves the expert path somewhere on 4 tasks"

    # Q - V lies in [-1, 1]: above 1 every differing proposal is deviated, below -1 none is
    everything = first_deviations(_with_delta(recipe, 1.01), local_policy, walks, proposals, backend)
    assert everything == {i: ts[0] for i, ts in differing.items() if ts}
    assert first_deviations(_with_delta(recipe, -1.01), local_policy, walks, proposals, backend) == {}

    # delta 0: a case is a differing position, no earlier than the first, and the same when the walk is
    # judged alone (rollout seeds come from the prefix, not from the batch)
    zero = _with_delta(recipe, 0.0)
    found = first_deviations(zero, local_policy, walks, proposals, backend)
    for i, t in found.items():
        assert t in differing[i]
    i = next(i for i, ts in differing.items() if ts)
    alone = first_deviations(zero, local_policy, [walks[i]], {(0, t): p for (j, t), p in proposals.items() if j == i},
                             backend)  # fmt: skip
    assert alone == ({0: found[i]} if i in found else {})


def test_find_cases_follows_the_recipe_rule(walked, local_policy):
    from steca_train.recovery import find_cases

    recipe, backend, walks, _ = walked
    by_difference = find_cases(recipe, local_policy, walks, backend, 32, rule="first_difference")
    lenient = find_cases(_with_delta(recipe, 1.01), local_policy, walks, backend, 32)
    strict = find_cases(_with_delta(recipe, -1.01), local_policy, walks, backend, 32)
    assert [(c.task.task_id, c.t, c.deviated.action) for c in lenient] == [
        (c.task.task_id, c.t, c.deviated.action) for c in by_difference
    ]
    assert by_difference and strict == []
    for case in by_difference:
        assert len(case.expert) == case.t - 1 and case.deviated.action != ""
