"""ALFWorld's planner as ground truth: plan lengths from any state, labels of moves, the eps-expert policy.

Real generated games on the real engine (the session's ``games`` fixture); states are made by playing
known actions, so the expected plan lengths are known.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from steca_data.core.ground_truth import DEAD_END, DETOUR, PROGRESS, is_bad, plan_label  # noqa: E402
from steca_data.envs.base import SessionPool  # noqa: E402
from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes  # noqa: E402
from steca_data.policies.base import PolicyRequest, SamplingParams  # noqa: E402
from steca_data.policies.eps_expert import EpsilonExpertPolicy  # noqa: E402
from steca_data.recipe.model import RecipeError, load_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _backend(root: Path):
    from steca_data.envs.alfworld import AlfworldBackend
    from steca_data.envs.alfworld.spec import AlfworldSpec

    splits = {"train": {"fold": "train", "count": 6}}
    return AlfworldBackend(AlfworldSpec(game="all", data_dir=str(root), splits=splits))


def _walk(backend, session, task):
    from steca_data.stages.experts import play_gold
    from steca_data.stages.walks import Walk

    return Walk(task, play_gold(backend, session, task, backend.version))


def test_plan_lengths_fall_by_one_along_the_plan(games):
    backend = _backend(games)
    session = backend.new_session()
    for task in backend.tasks("train"):
        result = session.reset(task)
        plan = session.remaining_plan()
        assert plan and len(plan) == len(session.walkthrough(task))  # both shortest
        for i, action in enumerate(plan):
            assert action in result.admissible
            result = session.step(action)
            assert len(session.remaining_plan()) == len(plan) - i - 1
        assert result.done and session.remaining_plan() == []


def test_labels_of_known_moves(games):
    from steca_data.stages.labels import label_move

    backend = _backend(games)
    session = backend.new_session()
    task = next(t for t in backend.tasks("train") if t.game == "pick_and_place_simple")
    walk = _walk(backend, session, task)
    session.reset(task)
    plan = session.remaining_plan()
    # the expert's first action, and the planner's from the start state
    first = label_move(session, walk, 1, plan[0])
    assert first["h_before"] == len(plan) and first["h_after"] == len(plan) - 1 and first["label"] == PROGRESS
    assert first["expert_label"] == plan_label(first["h_before"], first["h_after_expert"])
    # a state with a known plan: the expert prefix e_{1:t-1}, then a walk to a place the plan never visits
    t = len(walk.actions)  # before the expert's last action (the one that wins)
    labels = label_move(session, walk, t, walk.actions[t - 1])
    assert labels == {**labels, "h_before": 1, "h_after": 0, "label": PROGRESS, "expert_label": PROGRESS}
    replayed = session.reset(task)
    for action in walk.actions[: t - 1]:
        replayed = session.step(action)
    away = next(a for a in replayed.admissible if a.startswith("go to ") and a not in walk.actions)
    detour = label_move(session, walk, t, away)
    assert detour["label"] == DETOUR and detour["h_after"] >= detour["h_before"] + 1
    nothing = label_move(session, walk, t, "fly to the moon")  # invalid: nothing happens, one step wasted
    assert nothing["label"] == DETOUR and nothing["h_after"] == nothing["h_before"]


def test_label_rule():
    assert plan_label(5, 4) == PROGRESS and plan_label(5, 5) == DETOUR and plan_label(5, 7) == DETOUR
    assert plan_label(5, None) == DEAD_END and plan_label(None, 3) is None
    assert is_bad(DETOUR) and is_bad(DEAD_END) and not is_bad(PROGRESS) and not is_bad(None)


def _play(backend, policy, seeds):
    tasks = backend.tasks("train")
    starts = [EpisodeStart(task, seed=seed) for task in tasks for seed in seeds]
    with SessionPool(backend, 2) as pool:
        return run_episodes(pool, policy, starts, SamplingParams(temperature=1.0), 30, PromptConfig(False, 3))


def test_eps_expert_zero_is_the_planner_and_any_eps_is_reproducible(games):
    backend = _backend(games)
    session = backend.new_session()
    planner = _play(backend, EpsilonExpertPolicy(0.0), [0, 1])
    for trajectory in planner:
        session.reset(trajectory.task)
        assert [s.action for s in trajectory.steps] == session.remaining_plan()
        assert trajectory.success and trajectory.policy_id == "eps-expert:0"
    noisy = EpsilonExpertPolicy(0.5)
    first, again = _play(backend, noisy, [3, 4]), _play(backend, noisy, [3, 4])
    assert [[s.action for s in t.steps] for t in first] == [[s.action for s in t.steps] for t in again]
    assert any(len(t.steps) > len(p.steps) for t, p in zip(first, planner, strict=False))  # it strays


def test_eps_expert_one_is_uniform_over_admissible():
    admissible = ["go to desk 1", "go to bed 1", "look", "inventory", "examine desk 1"]
    policy = EpsilonExpertPolicy(1.0)
    requests = [PolicyRequest([], admissible, seed=s, plan_action="look") for s in range(5000)]
    counts = Counter(policy.act(r, SamplingParams()) for r in requests)
    assert set(counts) == set(admissible)
    assert all(abs(c - 1000) < 150 for c in counts.values()), counts  # ~5 sigma; the plan gets no extra share
    assert [policy.act(r, SamplingParams()) for r in requests[:50]] == [
        policy.act(r, SamplingParams()) for r in requests[:50]
    ]


def test_recipes_ask_for_a_planner_only_where_there_is_one(tmp_path):
    base = REPO / "recipes" / "quickstart.yaml"
    out = f"output.dir={tmp_path / 'b'}"
    with pytest.raises(RecipeError) as labels:
        load_recipe(base, [out, "labels.planner=true", "datasets=[expert,ds]"])
    assert "labels.planner" in str(labels.value) and "no planner" in str(labels.value)
    with pytest.raises(RecipeError) as policy:
        load_recipe(base, [out, "policy={backend: eps_expert, epsilon: 0.2}"])
    assert "policy.backend" in str(policy.value)
    with pytest.raises(RecipeError) as missing:
        load_recipe(REPO / "recipes" / "alfworld-groundtruth.yaml", [out, "policy.epsilon=null"])
    assert "epsilon" in str(missing.value)


def test_report_scores_the_rule_against_the_labels_of_a_real_build(games, tmp_path):
    import duckdb

    from steca_data.build.builder import Builder
    from steca_data.build.report import write_report
    from steca_data.core.progress import Reporter

    overrides = [f"env.data_dir={games}", "env.splits.train.count=2", "rollouts.tasks=2", "rollouts.n=3",
                 "rollouts.max_steps=15", f"output.dir={tmp_path / 'build'}"]  # fmt: skip
    recipe = load_recipe(REPO / "recipes" / "alfworld-groundtruth.yaml", overrides)
    Builder(recipe, Reporter(quiet=True)).build()
    detector = write_report(recipe.build_dir)["detector"]
    assert [row["n"] for row in detector["by_n"]] == [1, 2, 3] and detector["n_max"] == 3
    assert (recipe.build_dir / "report" / "detector_quality.png").is_file()
    with duckdb.connect(str(recipe.cache_path), read_only=True) as con:
        proposals = con.execute("SELECT count(*) FROM proposals").fetchone()[0]
        labels = con.execute("SELECT count(*), count(label) FROM plan_labels").fetchone()
        judged = con.execute(
            "SELECT deviated, label FROM labelled_deviations WHERE trim(proposed_action) <> trim(expert_action)"
        ).fetchall()
    assert labels == (proposals, proposals)  # every proposal labelled (no dead ends before it in ALFWorld)
    assert judged and detector["judged"] == len(judged)
    # the rule re-applied with all 3 rollouts at the recipe's delta gives the build's own verdicts
    counts = Counter((bool(deviated), is_bad(label)) for deviated, label in judged)
    full = detector["by_n"][-1]
    expected = (counts[True, True], counts[True, False], counts[False, True], counts[False, False])
    assert (full["tp"], full["fp"], full["fn"], full["tn"]) == expected
    # a rebuild computes no label again
    again = Builder(recipe, Reporter(quiet=True)).build()
    assert next(r for r in again.results if r.stage == "labels").computed == 0
