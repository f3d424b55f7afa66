"""ALFWorld in one command: with no game tree named, the build generates its games as a cached stage (the same
bytes as ``steca-data alfworld generate``), and ``plan`` on a fresh clone computes nothing and lists it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from steca_data.build.builder import Builder, compile_stages  # noqa: E402
from steca_data.cli.main import app  # noqa: E402
from steca_data.core.errors import RecipeError  # noqa: E402
from steca_data.core.progress import Reporter  # noqa: E402
from steca_data.envs.registry import list_tasks  # noqa: E402
from steca_data.recipe.model import load_recipe  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SEED = 5


@pytest.fixture(autouse=True)
def _no_named_tree(monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)


def _recipe(folder: Path, **env) -> Path:
    recipe = {
        "name": "games",
        "env": {
            "name": "alfworld",
            "game": "all",
            "generate": {"seed": SEED},
            "max_steps": 30,
            "workers": 1,
            "splits": {
                "train": {"fold": "train", "count": 2},
                "seen": {"fold": "valid_seen", "count": 1},
                "unseen": {"fold": "valid_unseen", "count": 1},
            },
            **env,
        },
        "datasets": ["expert"],
        "output": {"dir": str(folder / "build")},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "games.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_on_a_fresh_clone_computes_nothing_and_lists_the_games_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["plan", str(REPO / "recipes" / "alfworld.yaml")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = [
        cell.strip() for cell in next(line for line in lines if "stage" in line and "units" in line)[1:-1].split("┃")
    ]
    games = next(line for line in lines if line.strip("│ ").startswith("games "))
    row = dict(zip(header, (cell.strip() for cell in games[1:-1].split("│")), strict=True))
    assert (row["units"], row["cached"], row["to compute"]) == ("1", "0", "1")
    assert row["note"] == "24 train + 4 valid_seen + 4 valid_unseen small games, seed 0"
    assert list(tmp_path.iterdir()) == []  # nothing computed, nothing written


def test_the_games_stage_writes_what_alfworld_generate_writes_and_the_build_plays_them(tmp_path):
    recipe = load_recipe(_recipe(tmp_path / "a"))
    assert [s.name for s in compile_stages(recipe)] == ["games", "gold", "expert"]
    before = recipe.model_dump_json()
    summary = Builder(recipe, Reporter(quiet=True)).build()
    assert summary.output.counts == {"expert": 2}
    assert recipe.model_dump_json() == before and recipe.env.game_root() is None, "no stage changes the recipe"

    con = duckdb.connect(str(recipe.cache_path), read_only=True)
    (path, kind), *more = con.execute("select path, kind from artifacts").fetchall()
    tasks = sorted(t for (t,) in con.execute("select task_id from trajectories").fetchall())
    con.close()
    assert not Path(path).is_absolute(), "artifact paths are stored relative to the cache's folder (builds move)"
    tree = recipe.cache_path.parent.resolve() / path
    assert kind == "games" and not more and tree.parent == recipe.build_dir.resolve() / "games"
    assert all((tree / t.removeprefix("alfworld/") / "game.tw-pddl").is_file() for t in tasks)

    cli = tmp_path / "cli"
    args = ["alfworld", "generate", "--out", str(cli), "--seed", str(SEED), "--games", "2", "--eval-games", "1"]
    result = CliRunner().invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    staged, generated = _files(tree), _files(cli)
    staged.pop("manifest.json"), generated.pop("manifest.json")  # it records the seconds it took
    assert len(staged) == 8 and staged == generated  # 4 games x (game.tw-pddl, traj_data.json), same bytes

    again = Builder(load_recipe(_recipe(tmp_path / "a")), Reporter(quiet=True)).build()
    assert again.computed == 0 and again.results[0].cached == 1  # the games are a cached unit

    # a named tree wins over generation: no games stage, the same tasks
    named = load_recipe(_recipe(tmp_path / "b", data_dir=str(cli)))
    assert [s.name for s in compile_stages(named)] == ["gold", "expert"]
    assert sorted(t.task_id for t in list_tasks(named.env, "train")) == tasks


def test_generation_settings_must_cover_the_splits(tmp_path):
    with pytest.raises(RecipeError, match=r"env\.generate\.games: 1 train games, but the splits use 2"):
        load_recipe(_recipe(tmp_path, generate={"seed": 0, "games": 1}))
    with pytest.raises(RecipeError, match=r"env\.generate\.size"):
        load_recipe(_recipe(tmp_path, generate={"size": "huge"}))
