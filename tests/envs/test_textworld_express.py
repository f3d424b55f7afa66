"""The TextWorldExpress backend on the real engine: determinism, gold paths, admissible actions, failures."""

from __future__ import annotations

import pytest

from steca_data.core.schemas import Task
from steca_data.envs import EnvError, SessionPool, make_backend, replay
from steca_data.envs.registry import list_tasks
from steca_data.recipe.model import load_recipe
from steca_data.stages.experts import play_gold


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from tests.conftest import write_recipe

    recipe = load_recipe(write_recipe(tmp_path_factory.mktemp("twx"), train=6))
    b = make_backend(recipe.env)
    yield b
    b.close()


def _transitions(session, task, actions):
    first = session.reset(task)
    out = [(first.observation, tuple(first.admissible))]
    for a in actions:
        r = session.step(a)
        out.append((a, r.observation, r.score, r.done, tuple(r.admissible)))
    return out


def test_same_seed_same_transitions_across_sessions_and_resets(backend):
    task = backend.tasks("train")[3]
    s1, s2 = backend.new_session(), backend.new_session()
    gold = backend.gold_actions(s1, task)
    # a fixed mixed walk: some gold actions, one inadmissible action, then the rest of the gold path
    walk = gold[:2] + ["fly to the moon"] + gold[2:]
    a = _transitions(s1, task, walk)
    b = _transitions(s2, task, walk)
    c = _transitions(s1, task, walk)  # the same session after a reset
    assert a == b == c
    other = backend.tasks("train")[4]
    assert _transitions(s1, other, [])[0] != a[0], "a different seed should give a different game"


def test_gold_path_wins_and_actions_are_admissible(backend):
    task = backend.tasks("train")[0]
    session = backend.new_session()
    traj = play_gold(backend, session, task, backend.version)
    assert traj.success and traj.outcome_reward == 1.0
    assert traj.steps[-1].done and all(s.valid for s in traj.steps)
    assert traj.steps[0].action != "look around", "the redundant leading 'look around' is dropped"
    assert traj.instruction.startswith("Your task is to")


def test_replay_of_prefix_matches_stepwise_play(backend):
    task = backend.tasks("train")[1]
    session = backend.new_session()
    gold = backend.gold_actions(session, task)
    stepwise = _transitions(session, task, gold[:3])[-1]
    state = replay(session, task, gold[:3])
    assert (state.observation, state.score, tuple(state.admissible)) == stepwise[1:3] + (stepwise[4],)


def test_invalid_action_is_answered_and_marked(backend):
    task = backend.tasks("train")[2]
    session = backend.new_session()
    session.reset(task)
    r = session.step("take the moon")
    assert r.valid is False and not r.done and r.observation


def test_pool_runs_sessions_in_threads_and_reports_failures(backend):
    tasks = backend.tasks("train")
    broken = Task(
        task_id="twx/twc/numLocations=9/train/0",
        env="textworld_express",
        game="twc",
        params="numLocations=9",
        seed=0,
        fold="train",
        split="train",
        unseen=False,
    )
    with SessionPool(backend, workers=3) as pool:
        results = dict(
            (t.task_id, r) for t, r in pool.imap_unordered(lambda s, t: play_gold(backend, s, t, "v"), [*tasks, broken])
        )
    assert isinstance(results[broken.task_id], EnvError)
    assert all(results[t.task_id].success for t in tasks)


def test_task_listing_maps_folds_to_seeds_and_unseen(tmp_path):
    from tests.conftest import write_recipe

    recipe = load_recipe(write_recipe(tmp_path))
    unseen = list_tasks(recipe.env, "unseen")
    seen = list_tasks(recipe.env, "seen")
    assert [t.seed for t in unseen] == [20000, 20001, 20002, 20003] and all(t.unseen for t in unseen)
    assert [t.seed for t in seen][0] == 900 and not any(t.unseen for t in seen)
    assert unseen[0].task_id == "twx/twc/numItemsToPutAway=2,numLocations=1/test/20000"
