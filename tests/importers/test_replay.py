"""Imported experts drive the engine: records of a ShareGPT file that name games of an official-layout ALFWorld
tree are replayed in the real engine and walked like gold paths (expert, Dc, De, Ds with the random policy);
a broken record (unknown game, rejected action, replay without success) is skipped by index."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from steca_data.build.builder import Builder  # noqa: E402
from steca_data.core.progress import Reporter  # noqa: E402
from steca_data.envs.alfworld.generate import generate  # noqa: E402
from steca_data.recipe.model import load_recipe  # noqa: E402

COUNTS = {"train": 5, "valid_seen": 1, "valid_unseen": 1}
INSTRUCTION = 'Interact with a household to solve a task. Your output must be "Thought: ...\\nAction: ...".'
FILE_OBSERVATION = "Observation: what the file says happened"
# the prefixes the public files (ETO, IPR, STeCa) and other tools write before json_2.1.1/<fold>/...
PREFIXES = ["eval_agent/data/alfworld/json_2.1.1/", "data/json_2.1.1/", "json_2.1.1/"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """An official-layout tree (``<root>/json_2.1.1/<fold>/<task>/<trial>``) of a few generated games."""
    root = tmp_path_factory.mktemp("alfworld_data")
    report = generate(root / "json_2.1.1", seed=11, games=COUNTS, size="small")
    assert not report.failed()
    return root


def _games(tree: Path, fold: str) -> list[str]:
    return sorted(
        p.parent.relative_to(tree / "json_2.1.1").as_posix() for p in tree.glob(f"json_2.1.1/{fold}/*/*/game.tw-pddl")
    )


def _old_wording(action: str) -> str:
    """ALFWorld 0.3's wording, as in the public files: 'put X in/on Y' for 0.4's 'move X to Y'."""
    if action.startswith("move "):
        obj, recep = action[len("move ") :].split(" to ")
        return f"put {obj} in/on {recep}"
    return action


def sharegpt_record(tree: Path, game: str, prefix: str, actions: list[str] | None = None, **fields) -> dict:
    walkthrough = json.loads((tree / "json_2.1.1" / game / "game.tw-pddl").read_text())["walkthrough"]
    turns = [
        {"from": "human", "value": INSTRUCTION},
        {"from": "gpt", "value": "OK"},
        {"from": "human", "value": "You are in the middle of a room.\nYour task is to: solve it."},
    ]
    for j, action in enumerate(walkthrough if actions is None else actions):
        turns.append({"from": "gpt", "value": f"Thought: my plan, step {j + 1}.\nAction: {_old_wording(action)}"})
        turns.append({"from": "human", "value": FILE_OBSERVATION})
    return {"id": game.split("/", 1)[1], "game_file": f"{prefix}{game}/game.tw-pddl", **fields, "conversations": turns}


def _walkthrough(tree: Path, game: str) -> list[str]:
    return json.loads((tree / "json_2.1.1" / game / "game.tw-pddl").read_text())["walkthrough"]


@pytest.fixture(scope="module")
def experts_file(tree, tmp_path_factory) -> tuple[Path, list[str]]:
    train, seen = _games(tree, "train"), _games(tree, "valid_seen")
    records = [sharegpt_record(tree, g, PREFIXES[i % 3]) for i, g in enumerate(train[:3])]  # 0, 1, 2: good
    rejected = _walkthrough(tree, train[3])
    records.append(sharegpt_record(tree, train[3], "", rejected[:1] + ["fly to the moon"] + rejected[1:]))  # 3
    records.append(sharegpt_record(tree, train[4], "data/json_2.1.1/", _walkthrough(tree, train[4])[:-1]))  # 4
    unknown = "train/pick_and_place_simple-Mug-None-Desk-308/trial_T20190908_210014_004453"
    records.append({**sharegpt_record(tree, train[0], ""), "game_file": f"json_2.1.1/{unknown}"})  # 5
    records.append({k: v for k, v in sharegpt_record(tree, seen[0], "").items() if k != "game_file"})  # 6: id only
    records.append({"id": "no-turns"})  # 7
    path = tmp_path_factory.mktemp("import") / "experts.json"
    path.write_text(json.dumps(records, indent=1))
    return path, train


def _recipe(tmp_path: Path, tree: Path, experts: Path, datasets: list[str]) -> Path:
    recipe = {
        "name": "replayed",
        "env": {
            "name": "alfworld",
            "game": "all",
            "data_dir": str(tree),
            "max_steps": 20,
            "workers": 1,
            "splits": {
                "train": {"fold": "train", "count": 5},
                "seen": {"fold": "valid_seen", "count": 1},
                "unseen": {"fold": "valid_unseen", "count": 1},
            },
        },
        "experts": {"source": "sharegpt", "path": str(experts)},
        "prompt": {"include_example": False, "history": 2},
        "policy": {"backend": "random"},
        "rollouts": {"n": 1, "temperature": 1.0, "max_steps": 4},
        "deviation": {"delta": 0.5},  # a random proposal that does no better by half a success is deviated
        "reflection": {"backend": "template"},
        "reward": {"eta": 0.01, "distance": "exact"},
        "datasets": datasets,
        "output": {"dir": str(tmp_path / "build")},
    }
    path = tmp_path / "replayed.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _sql(tmp_path: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "build" / "cache.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_imported_experts_are_replayed_and_drive_the_engine(tree, experts_file, tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    experts, train = experts_file
    recipe = load_recipe(_recipe(tmp_path, tree, experts, ["expert", "dc", "de", "ds"]))
    summary = Builder(recipe, Reporter(quiet=True)).build()

    errors = dict(_sql(tmp_path, "select record_index, error from import_errors"))
    assert sorted(errors) == [3, 4, 5, 7]
    assert "step 2: the environment rejects the action 'fly to the moon'" in errors[3]
    assert "ended without success" in errors[4]
    assert "no game train/pick_and_place_simple-Mug-None-Desk-308" in errors[5]
    assert "conversations" in errors[7]
    (stage,) = [r for r in summary.results if r.stage == "import"]
    assert stage.unit_failures == 0 and stage.notes == ["4 record(s) skipped: see import_errors"]

    counts = summary.output.counts
    assert counts["expert"] == 4 and set(counts) == {"expert", "dc", "de", "ds"}
    assert counts["ds"] > 0 and counts["dc"] > 0  # the random agent deviates and fails at once
    # the engine walked the replayed train games (the valid_seen record is an expert, not a walk)
    walked = {t for (t,) in _sql(tmp_path, "select distinct task_id from proposals")}
    assert walked == {f"alfworld/{g}" for g in train[:3]}
    splits = dict(_sql(tmp_path, "select task_id, split from trajectories where source = 'imported'"))
    assert sorted(splits.values()) == ["seen", "train", "train", "train"]

    # observations come from the engine, thoughts from the file, actions in the engine's wording
    steps = _sql(
        tmp_path,
        "select s.thought, s.action, s.observation, s.valid from steps s join trajectories t "
        f"on t.key = s.trajectory_key where t.task_id = 'alfworld/{train[0]}' order by s.step_index",
    )
    assert [a for _, a, _, _ in steps] == _walkthrough(tree, train[0])
    assert [th for th, _, _, _ in steps] == [f"my plan, step {j + 1}." for j in range(len(steps))]
    assert all(obs and obs != FILE_OBSERVATION.removeprefix("Observation: ") and ok for _, _, obs, ok in steps)

    again = Builder(load_recipe(_recipe(tmp_path, tree, experts, ["expert", "dc", "de", "ds"])), Reporter(quiet=True))
    rebuilt = again.build()
    assert rebuilt.computed == 0  # replays, rejected replays and the engine's units are all cached


def test_expert_only_recipes_replay_what_maps_and_import_the_rest_as_is(tree, experts_file, tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    experts, train = experts_file
    records = json.loads(experts.read_text())
    records.append({**records[0], "id": "free-text", "game_file": "not/a/game"})  # 8: names no task
    path = tmp_path / "experts.json"
    path.write_text(json.dumps(records))
    summary = Builder(load_recipe(_recipe(tmp_path, tree, path, ["expert"])), Reporter(quiet=True)).build()
    assert summary.output.counts == {"expert": 5}
    sources = dict(_sql(tmp_path, "select task_id, thought_source from trajectories"))
    assert sources["alfworld/free-text"] == "file"  # imported as the file tells it
    observations = _sql(
        tmp_path,
        "select s.observation from steps s join trajectories t on t.key = s.trajectory_key "
        "where t.task_id = 'alfworld/free-text'",
    )
    assert {o for (o,) in observations} == {FILE_OBSERVATION.removeprefix("Observation: ")}
    assert sorted(r for (r,) in _sql(tmp_path, "select record_index from import_errors")) == [3, 4, 5, 7]


def test_game_references_of_the_public_files_map_to_tasks(tree):
    from steca_data.envs.alfworld.spec import AlfworldSpec
    from steca_data.envs.registry import plugin

    spec = AlfworldSpec(data_dir=str(tree), splits={"train": {"fold": "train", "count": 5}})
    game = _games(tree, "train")[0]
    alfworld = plugin("alfworld")
    refs = [f"{p}{game}/game.tw-pddl" for p in PREFIXES] + [f"json_2.1.1/{game}", game, f"alfworld/{game}"]
    tasks = {alfworld.task_for_record(spec, {"game_file": ref}).task_id for ref in refs}
    tasks.add(alfworld.task_for_record(spec, {"id": game.split("/", 1)[1]}).task_id)  # <task>/<trial>: fold found
    assert tasks == {f"alfworld/{game}"}
    assert alfworld.task_for_record(spec, {"id": "alfworld_17"}) is None
    with pytest.raises(ValueError, match="fold 'valid_train' is not played here"):
        alfworld.task_for_record(spec, {"game_file": f"json_2.1.1/valid_train/{game.split('/', 1)[1]}"})
    only = AlfworldSpec(
        data_dir=str(tree), game="look_at_obj_in_light", splits={"train": {"fold": "train", "count": 1}}
    )
    other = next(g for g in _games(tree, "train") if not g.startswith("train/look_at_obj_in_light"))
    with pytest.raises(ValueError, match="is not in env.game"):
        alfworld.task_for_record(only, {"game_file": other})
    assert alfworld.replay_action("put mug 1 in/on desk 1", ["move mug 1 to desk 1"]) == "move mug 1 to desk 1"
    assert alfworld.replay_action("put mug 1 in/on desk 1", ["look"]) == "put mug 1 in/on desk 1"
