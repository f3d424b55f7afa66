"""ALFWorld on the real engine: generated games, the backend, the cached engine, the official-layout loader.

One small game set is generated per test session (a few seconds per game); every test plays real games.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from steca_data.envs.alfworld.gamefiles import find_games  # noqa: E402
from steca_data.envs.alfworld.generate import generate_one  # noqa: E402
from steca_data.envs.alfworld.problem import TASK_TYPES  # noqa: E402
from steca_data.envs.alfworld.scenes import UNSEEN_FLOOR_PLANS  # noqa: E402
from steca_data.envs.alfworld.spec import AlfworldSpec  # noqa: E402
from steca_data.recipe.model import RecipeError, load_recipe  # noqa: E402
from tests.envs.conftest import ALFWORLD_GAMES as COUNTS  # noqa: E402  (the `games` fixture's set)

# the fixture tree holds one game of each type; the shipped recipe walks two types only
FITS = ["env.game=all", "env.splits.train.count=6", "env.splits.seen.count=1", "env.splits.unseen.count=2"]


def _spec(root: Path, **splits) -> AlfworldSpec:
    splits = splits or {"train": {"fold": "train", "count": 6}}
    return AlfworldSpec(game="all", data_dir=str(root), splits=splits)


def _backend(root: Path, **splits):
    from steca_data.envs.alfworld import AlfworldBackend

    return AlfworldBackend(_spec(root, **splits))


def test_generated_set_covers_all_types_and_holds_out_floor_plans(games):
    manifest = json.loads((games / "manifest.json").read_text())
    assert set(manifest["counts"]["train"]) == set(TASK_TYPES)
    kept = [g for g in manifest["games"] if g["path"]]
    assert len(kept) == sum(COUNTS.values())
    for g in kept:
        unseen = g["floor_plan"] in UNSEEN_FLOOR_PLANS
        assert unseen == (g["fold"] == "valid_unseen"), g
        game = json.loads((games / g["path"] / "game.tw-pddl").read_text())
        assert game["solvable"] is True and game["walkthrough"]
        assert "agent1 - agent" in game["pddl_problem"]
    assert manifest["expert_win_rate"] >= 0.8  # the fixed expert; measured at scale in the README


def test_same_seed_same_game(games, tmp_path):
    again = generate_one(str(tmp_path), 7, "train", 5, "small", TASK_TYPES)
    first = games / again.path
    for name in ("game.tw-pddl", "traj_data.json"):
        assert (tmp_path / again.path / name).read_bytes() == (first / name).read_bytes()


def test_backend_plays_walkthrough_to_won_with_admissible_commands(games):
    backend = _backend(games)
    tasks = backend.tasks("train")
    assert {t.game for t in tasks} == set(TASK_TYPES)
    session = backend.new_session()
    for task in tasks:
        result = session.reset(task)
        assert "Your task is to" not in result.observation and session.instruction()
        actions = session.walkthrough(task)
        for action in actions:
            assert action in result.admissible, (task.task_id, action)
            assert not result.done
            result = session.step(action)
            assert result.valid is True
        assert result.success and result.done and result.score == 1.0, task.task_id


def test_invalid_action_and_prefix_replay_are_deterministic(games):
    from steca_data.envs import replay

    backend = _backend(games)
    first, second = backend.tasks("train")[:2]
    session = backend.new_session()
    bad = session.reset(first)
    bad = session.step("fly to the moon")
    assert bad.valid is False and bad.observation == "Nothing happens." and not bad.done
    prefix = session.walkthrough(first)[:-1]
    a = replay(session, first, prefix)
    replay(session, second, session.walkthrough(second)[:2])  # another game in between
    b = replay(backend.new_session(), first, prefix)
    c = replay(session, first, prefix)
    assert (a.observation, a.admissible) == (b.observation, b.admissible) == (c.observation, c.admissible)
    assert not a.done


def test_closed_sessions_give_their_engines_to_the_next_ones(games):
    """An engine is a private copy of Fast Downward's library, loaded for good: a new session after a closed one
    takes its engine (and the game it has loaded) and plays the same transcript as a fresh engine."""
    from steca_data.envs import replay
    from steca_data.envs.alfworld import engine

    backend = _backend(games)
    task = backend.tasks("train")[0]
    made = []
    original = engine.make_env
    engine.make_env = lambda **kw: made.append(1) or original(**kw)
    try:
        first = backend.new_session()
        prefix = first.walkthrough(task)[:3]
        a = replay(first, task, prefix)
        first.close()
        second = backend.new_session()  # reuses the closed session's engine
        b = replay(second, task, prefix)
        third = backend.new_session()  # none idle: a new engine
        c = replay(third, task, prefix)
    finally:
        engine.make_env = original
    assert len(made) == 2
    assert (a.observation, a.admissible) == (b.observation, b.admissible) == (c.observation, c.admissible)
    backend.close()
    second.close()  # after the backend: its engine is dropped, not kept for a session that will never come
    third.close()
    assert backend._idle == []


def test_cached_engine_transcript_equals_stock(games):
    from steca_data.envs.alfworld.engine import make_env, make_stock_env

    game = next((games / "train").rglob("game.tw-pddl"))
    walkthrough = json.loads(game.read_text())["walkthrough"]
    transcripts = []
    for make in (make_stock_env, make_env):
        env = make()
        env.load(str(game))
        state = env.reset()
        lines = [(state.feedback, state["admissible_commands"])]
        for action in walkthrough + ["look", "inventory"]:
            state, _, _ = env.step(action)
            lines.append((state.feedback, state["admissible_commands"], state["won"]))
        transcripts.append(lines)
    assert transcripts[0] == transcripts[1]


def test_fixed_expert_wins_pick_two_where_stock_tracking_loops(games):
    from steca_data.envs.alfworld.engine import make_env
    from steca_data.envs.alfworld.expert import run_expert

    folder = next(p for p in (games / "train").iterdir() if p.name.startswith("pick_two_obj_and_place"))
    trial = next(folder.iterdir())
    traj = json.loads((trial / "traj_data.json").read_text())
    env = make_env()
    env.load(str(trial / "game.tw-pddl"))
    runs = [run_expert(env, traj, seed=3) for _ in range(2)]
    assert runs[0].won and runs[0].actions == runs[1].actions  # wins, and deterministically
    assert sum(a.startswith("move ") for a in runs[0].actions) == 2
    stock = run_expert(env, traj, seed=3, max_steps=60, fixed=False)
    assert (
        not stock.won
    )  # stock tracking still thinks it holds the first object; it wanders (45 games: 71 % won, median 58 steps vs 13)


def test_official_layout_loader(games, tmp_path, monkeypatch):
    from steca_data.envs.alfworld import list_alfworld_tasks

    root = tmp_path / "alfworld_data" / "json_2.1.1"
    shutil.copytree(games / "train", root / "train")
    # games ALFWorld's loader skips: movable-receptacle tasks and games not marked solvable
    src = next((root / "train").iterdir())
    shutil.copytree(src, root / "train" / "pick_and_place_with_movable_recep-X-Bowl-Y-1")
    unsolvable = root / "train" / src.name.replace("-", "_", 1)
    shutil.copytree(src, unsolvable)
    game_file = next(unsolvable.rglob("game.tw-pddl"))
    data = json.loads(game_file.read_text())
    game_file.write_text(json.dumps({**data, "solvable": False}))

    assert len(find_games(root.parent, "train")) == COUNTS["train"]
    monkeypatch.setenv("ALFWORLD_DATA", str(root.parent))
    spec = AlfworldSpec(game="pick_two_obj_and_place", splits={"train": {"fold": "train", "count": 1}})
    tasks = list_alfworld_tasks(spec, "train")
    assert [t.game for t in tasks] == ["pick_two_obj_and_place"] and tasks[0].task_id.startswith("alfworld/train/")
    too_many = AlfworldSpec(splits={"train": {"fold": "train", "count": 50}})
    with pytest.raises(ValueError, match="holds 6 matching game"):
        list_alfworld_tasks(too_many, "train")


def test_recipe_validation(games, tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "alfworld.yaml"
    r = load_recipe(recipe, [f"env.data_dir={games}", *FITS])
    assert r.env.game == "all" and Path(r.env.data_dir) == games.resolve()
    with pytest.raises(RecipeError, match="splits.seen.fold: must be one of"):
        load_recipe(recipe, [f"env.data_dir={games}", *FITS, "env.splits.seen.fold=test"])
    with pytest.raises(RecipeError, match="unknown ALFWorld task type"):
        load_recipe(recipe, [f"env.data_dir={games}", *FITS, "env.game=make_coffee"])
    with pytest.raises(RecipeError, match="holds 6 matching game"):
        load_recipe(recipe, [f"env.data_dir={games}", "env.game=all", "env.splits.train.count=50"])
    with pytest.raises(RecipeError, match="no game tree at"):
        load_recipe(recipe, [f"env.data_dir={tmp_path / 'nowhere'}"])
    local = tmp_path / "r.yaml"
    local.write_text(recipe.read_text())
    (tmp_path / "games").symlink_to(games)
    assert Path(load_recipe(local, ["env.data_dir=games", *FITS]).env.data_dir) == games.resolve()


def test_build_expert_dataset_records_versions_and_survives_a_broken_game(games, tmp_path):
    from steca_data.build.builder import Builder
    from steca_data.cache.store import Cache
    from steca_data.core.progress import Reporter

    tree = tmp_path / "games"
    shutil.copytree(games, tree)
    broken = sorted((tree / "train").rglob("game.tw-pddl"))[0]
    data = json.loads(broken.read_text())
    broken.write_text(json.dumps({**data, "pddl_problem": "(define (problem broken"}))
    recipe = load_recipe(
        Path(__file__).resolve().parents[2] / "recipes" / "alfworld.yaml",
        [
            f"env.data_dir={tree}",
            *FITS,
            f"output.dir={tmp_path / 'build'}",
            "datasets=[expert]",  # the expert part only; the engine on ALFWorld is its own (slow) matter
            "failures.max_rate=0.5",  # one broken game of six is what this test is about
        ],
    )
    summary = Builder(recipe, Reporter(quiet=True)).build()
    assert summary.failed == 1 and summary.output.counts["expert"] == 5
    with Cache(recipe.cache_path) as cache:
        rows = cache.con.execute("select env_version, success from trajectories").fetchall()
        failures = cache.con.execute("select task_id from failures").fetchall()
    assert len(rows) == 5 and all(ok for _, ok in rows)
    assert all("alfworld 0.4.2" in v and "textworld" in v for v, _ in rows)
    assert failures[0][0].startswith("alfworld/train/" + broken.parent.parent.name)


def test_generate_cli_rejects_bad_input(tmp_path):
    from typer.testing import CliRunner

    from steca_data.cli.main import app

    result = CliRunner().invoke(app, ["alfworld", "generate", "--out", str(tmp_path / "g"), "--size", "huge"])
    assert result.exit_code == 2 and "--size must be one of" in result.output
    result = CliRunner().invoke(app, ["alfworld", "generate", "--out", str(tmp_path / "g"), "--task-types", "nap"])
    assert result.exit_code == 2 and "unknown" in result.output


def test_a_named_tree_wins_over_generation(games, monkeypatch):
    """env.data_dir, else $ALFWORLD_DATA, names the tree; only without one does the build generate games.
    ALFWORLD_DATA set to alfworld's own default (importing alfworld sets it) names a tree only if one is there."""
    from steca_data.envs.alfworld.spec import ALFWORLD_DEFAULT_DATA
    from steca_data.envs.registry import plugin

    alfworld = plugin("alfworld")
    splits = {"train": {"fold": "train", "count": 3}, "unseen": {"fold": "valid_unseen", "start": 1, "count": 1}}
    spec = AlfworldSpec(game="pick_two_obj_and_place,look_at_obj_in_light", generate={"seed": 3}, splits=splits)
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    data = alfworld.generated_data(spec)
    assert data.settings["games"] == {"train": 3, "valid_seen": 0, "valid_unseen": 2}  # what the splits use
    assert data.settings["task_types"] == ["pick_two_obj_and_place", "look_at_obj_in_light"]  # in written order
    assert data.settings["seed"] == 3 and spec.game_root() is None and alfworld.tasks(spec, "train") == []
    has_tree = any((ALFWORLD_DEFAULT_DATA / d).is_dir() for d in ("json_2.1.1", "train"))
    monkeypatch.setenv("ALFWORLD_DATA", str(ALFWORLD_DEFAULT_DATA))
    assert (alfworld.generated_data(spec) is None) == has_tree
    monkeypatch.setenv("ALFWORLD_DATA", str(games))
    assert alfworld.generated_data(spec) is None and spec.game_root() == games
    monkeypatch.delenv("ALFWORLD_DATA")
    every = AlfworldSpec(splits={"train": {"fold": "train", "count": 6}})
    every = every.with_generated(games)  # what the games stage resolves once the tree exists
    assert alfworld.tasks(every, "train") == _backend(games).tasks("train")
