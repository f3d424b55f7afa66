"""VirtualHome on the real evolving-graph simulator and the real scene-1 tasks of virtualhome-eval.

Fast (well under a minute): gold replays on a fixed sample of ~30 kept tasks across the three folds; the
replay of all 518 is a measurement (``python -m steca_data.envs.virtualhome.manifest``), not a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("virtualhome_eval")

from steca_data.envs.virtualhome import (  # noqa: E402
    ACTION_TEMPLATES,
    FOLD_SIZES,
    FOLDS,
    PROMPT_VERSION,
    VirtualHomeBackend,
    check_disjoint,
    fold_sizes,
    fold_tasks,
    list_tasks,
    manifest,
    splits,
    template_thought,
    virtualhome_version,
)
from steca_data.envs.virtualhome.actions import TEMPLATES, parse_action, render_action  # noqa: E402
from steca_data.envs.virtualhome.data import load_programs  # noqa: E402
from steca_data.envs.virtualhome.simulator import NOTHING_HAPPENS, Episode, build_world, load_world  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PER_FOLD = {"train": 12, "seen": 8, "unseen": 10}


def make_spec(**blocks: tuple[str, int, int]) -> SimpleNamespace:
    """A recipe ``env`` section as the backend reads it: split name -> (fold, start, count)."""
    return SimpleNamespace(
        name="virtualhome",
        max_steps=40,
        splits={name: SimpleNamespace(fold=f, start=s, count=c, params=None) for name, (f, s, c) in blocks.items()},
    )


@pytest.fixture(scope="module")
def backend():
    spec = make_spec(**{fold: (fold, 0, n) for fold, n in PER_FOLD.items()})
    b = VirtualHomeBackend(spec)
    yield b
    b.close()


@pytest.fixture(scope="module")
def sample(backend):
    return [task for fold in PER_FOLD for task in backend.tasks(fold)]


def play(session, task, actions):
    results = [session.reset(task)]
    results += [session.step(a) for a in actions]
    return results


def test_gold_replays_succeed(backend, sample):
    session = backend.new_session(with_admissible=False)  # admissible lists are tested below
    programs = load_programs()
    for task in sample:
        gold = backend.gold_actions(session, task)
        assert 0 < len(gold) <= len(programs[task.task_id[3:]].steps)
        results = play(session, task, gold)
        assert results[-1].success and results[-1].done and results[-1].score == 1.0, task.task_id
        assert not any(r.done for r in results[:-1]) and 0.0 <= results[0].score < 1.0
        assert all(0.0 <= r.score <= 1.0 for r in results) and all(r.valid for r in results[1:]), task.task_id


def test_every_task_and_backend_carry_the_version(backend, sample):
    version = f"virtualhome-eval {metadata.version('virtualhome-eval')}"
    assert backend.version == virtualhome_version() == version and backend.name == "virtualhome"
    assert manifest.load_manifest()["version"] == version, "tasks.json was made with another virtualhome-eval"
    programs = load_programs()
    for task in sample:
        assert task.env == "virtualhome" and task.task_id.startswith("vh/") and task.params == "" and task.seed is None
        assert task.game == programs[task.task_id[3:]].title
        assert task.unseen == (task.fold == "unseen") and task.split == task.fold


def test_observations_identical_across_runs_resets_and_processes(backend, sample):
    task = sample[0]
    actions = backend.gold_actions(backend.new_session(), task)[:6] + ["grab unicorn", "sleep"]
    first, second = backend.new_session(), backend.new_session()
    run1 = [(r.observation, r.admissible, r.score, r.valid) for r in play(first, task, actions)]
    run2 = [(r.observation, r.admissible, r.score, r.valid) for r in play(first, task, actions)]  # after a reset
    run3 = [(r.observation, r.admissible, r.score, r.valid) for r in play(second, task, actions)]
    assert run1 == run2 == run3
    # another process has another str-hash seed: set order must not leak into the text
    code = (
        "import hashlib, json, sys\n"
        "from types import SimpleNamespace\n"
        "from steca_data.envs.virtualhome import VirtualHomeBackend\n"
        "from steca_data.core.schemas import Task\n"
        "task, actions = Task.model_validate_json(sys.argv[1]), json.loads(sys.argv[2])\n"
        "s = VirtualHomeBackend(SimpleNamespace(splits={})).new_session()\n"
        "out = [s.reset(task)] + [s.step(a) for a in actions]\n"
        "print(hashlib.sha256(json.dumps([(r.observation, r.admissible) for r in out]).encode()).hexdigest())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, task.model_dump_json(), json.dumps(actions)],
        capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "PYTHONHASHSEED": "12345"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    here = hashlib.sha256(json.dumps([(o, a) for o, a, _, _ in run1]).encode()).hexdigest()
    assert proc.stdout.strip() == here


@pytest.mark.parametrize(
    "action",
    ["", "   ", "fly to the moon", "grab unicorn", "walk to", "put", "put cup", "open the", "sit on bed bed",
     "switch on switch on", "grab " + "x" * 5000, "\x00\n\t", "ñandú ☃", "put cup on", "pour into", "stand up"],
)  # fmt: skip
def test_a_wrong_action_gives_nothing_happens_and_changes_nothing(backend, sample, action):
    session = backend.new_session()
    start = session.reset(sample[1])
    before = session._episode.snapshot()
    result = session.step(action)
    assert result.observation == NOTHING_HAPPENS and result.valid is False
    assert not result.done and result.score == start.score and result.admissible == start.admissible
    assert session._episode.snapshot() == before


def test_impossible_actions_on_real_objects_give_nothing_happens(backend, sample):
    session = backend.new_session()
    session.reset(sample[2])
    for action in ("grab bathroom", "drink television", "sit on light", "put on toilet", "plug in character",
                   "switch off floor", "put wall in bed", "pour ceiling into sink"):  # fmt: skip
        assert session.step(action).observation == NOTHING_HAPPENS, action


def test_reset_restores_the_initial_state_exactly(backend, sample):
    session = backend.new_session()
    for task in sample[:5]:
        start = session.reset(task)
        initial = session._episode.snapshot()
        gold = backend.gold_actions(session, task)
        after = play(session, task, gold)[-1]
        assert session._episode.snapshot() != initial and after.observation != start.observation
        again = session.reset(task)
        assert session._episode.snapshot() == initial and again == start
        assert session._episode.executed == [] and session._episode.bound == {}
        # the shared, cached graph was not mutated: a graph built from the files gives the same state
        assert Episode(build_world(task.task_id[3:])).snapshot() == initial


def test_admissible_actions_hold_the_gold_action_and_all_execute(backend, sample):
    session, hits, total = backend.new_session(), 0, 0
    for task in sample[::4]:
        gold = backend.gold_actions(session, task)
        result = session.reset(task)
        for i, action in enumerate(gold):
            assert result.admissible == sorted(set(result.admissible))
            hits += action in result.admissible
            total += 1
            if i % 4 == 1:  # every listed action is accepted by the executor (a fixed sample of them)
                for other in result.admissible[:: max(1, len(result.admissible) // 8)]:
                    episode = Episode(load_world(task.task_id[3:]))
                    for done in gold[:i]:
                        episode.act(done)
                    assert episode.act(other), (task.task_id, i, other)
            result = session.step(action)
    assert hits >= 0.95 * total, f"gold action admissible in {hits}/{total} steps"


def test_fast_walk_and_find_verdicts_equal_the_executor(backend, sample):
    for task in sample[::6]:
        episode = Episode(load_world(task.task_id[3:]))
        for action in backend.gold_actions(backend.new_session(), task)[:6]:
            names = [n for n in episode.world.by_class if n != "character"]
            fast = episode.go_verdicts(names)
            slow = {n: (episode.is_admissible("WALK", (n,)), episode.is_admissible("FIND", (n,))) for n in names}
            assert fast == slow, task.task_id
            episode.act(action)


def test_sessions_on_threads_agree_with_one_session(backend, sample):
    tasks = sample[::8]

    def run(task):
        session = backend.new_session()
        return [r.observation for r in play(session, task, backend.gold_actions(session, task))]

    alone = [run(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(run, tasks)) == alone


def test_instruction_is_steca_style(backend):
    session = backend.new_session()
    fold = next(f for f in FOLDS if ("1003_2", "Write an email") in fold_tasks(f))
    task = next(t for t in list_tasks(make_spec(x=(fold, 0, FOLD_SIZES[fold])), "x") if t.task_id == "vh/1003_2")
    session.reset(task)
    assert session.instruction() == "The task is Write an email(go to the home office and write an email)."


def test_folds_are_disjoint_deterministic_and_sized():
    check_disjoint()
    assert fold_sizes() == FOLD_SIZES, "update splits.FOLD_SIZES after regenerating tasks.json"
    first = {f: fold_tasks(f) for f in splits.SCENE_FOLDS}
    splits.folds.cache_clear()
    assert {f: fold_tasks(f) for f in splits.SCENE_FOLDS} == first
    kept = sum(FOLD_SIZES[f] for f in splits.SCENE_FOLDS)
    assert kept == manifest.load_manifest()["counts"]["kept"]
    assert 0.18 <= FOLD_SIZES["unseen"] / kept <= 0.3 and 0.08 <= FOLD_SIZES["seen"] / kept <= 0.12
    unseen_titles = {title for _, title in first["unseen"]}
    assert unseen_titles and not unseen_titles & {title for f in ("train", "seen") for _, title in first[f]}
    assert len({title for _, title in first["seen"]} - {title for _, title in first["train"]}) == 0


def test_list_tasks_takes_blocks_and_rejects_too_many():
    spec = make_spec(train=("train", 0, 5), more=("train", 5, 5), unseen=("unseen", 0, FOLD_SIZES["unseen"]))
    a, b = list_tasks(spec, "train"), list_tasks(spec, "more")
    assert [t.task_id for t in a + b] == [t.task_id for t in list_tasks(make_spec(x=("train", 0, 10)), "x")]
    assert len(list_tasks(spec, "unseen")) == FOLD_SIZES["unseen"]
    with pytest.raises(ValueError, match=r"fold 'seen', which holds \d+ VirtualHome tasks"):
        list_tasks(make_spec(seen=("seen", 1, FOLD_SIZES["seen"])), "seen")
    with pytest.raises(ValueError, match="folds train, seen, unseen"):
        list_tasks(make_spec(dev=("dev", 0, 1)), "dev")


def test_manifest_verdicts_match_the_code():
    """One task of each status is judged again: the shipped tasks.json agrees with this code."""
    entries = manifest.load_manifest()["tasks"]
    assert len(entries) == 518
    by_status = {}
    for entry in entries:
        by_status.setdefault(entry["status"], entry)
    assert set(by_status) == {"kept", "empty_goal", "gold_program_fails", "several_instances", "ambiguous_name"}
    for entry in by_status.values():
        assert manifest.judge(entry["file_id"]) == entry


def test_text_actions_round_trip_for_every_gold_step():
    for program in load_programs().values():
        for step in program.steps:
            names = tuple(name for name, _ in step.args)
            parsed = parse_action(render_action(step.action, names))
            assert parsed is not None and (parsed.action, parsed.names) == (step.action, names)
    assert parse_action("Put the cup on the kitchen table.") == parse_action("put cup on kitchen_table")
    assert parse_action("put on clothes shirt").action == "PUTON"
    assert parse_action("put cup on table").action == "PUTBACK"


def test_thoughts_and_prompt_pieces(sample, backend):
    assert PROMPT_VERSION == "virtualhome-v1" and "walk to OBJ" in ACTION_TEMPLATES
    assert "put OBJ on RECEP" in ACTION_TEMPLATES and len(set(ACTION_TEMPLATES)) == len(TEMPLATES)
    for task in sample:
        for action in backend.gold_actions(backend.new_session(), task):
            thought = template_thought(action, "")
            assert thought and thought == template_thought(action, ""), action
    assert template_thought("grab cup", "The cup is on the kitchen table.") == (
        "The cup is on the kitchen table. I will take it."
    )
    assert template_thought("dance", "") is None


def test_goal_sources_and_observation_speed():
    world = load_world("1003_2")
    assert world.goal.source == "vh" and world.goal.actions == ("TYPE", "SWITCHOFF")
    assert world.dropped_inside_edges == 6  # the 3 curtain pairs, both directions
    episode = Episode(world)
    assert episode.observation() == "You are in the bedroom." and episode.goal_progress() == (0, 2)
