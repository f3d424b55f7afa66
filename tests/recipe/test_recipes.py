"""Recipes: every malformed recipe is rejected before any work, with one line naming file, field and problem."""

from __future__ import annotations

import textwrap

import pytest

from steca_data.recipe.model import RecipeError, load_recipe
from tests.conftest import run_cli

GOOD = """\
name: tiny
env:
  name: textworld_express
  game: twc
  params: {numLocations: 1, numItemsToPutAway: 2}
  max_steps: 20
  splits:
    train: {fold: train, start: 0, count: 10}
    seen: {fold: train, start: 900, count: 5}
    unseen: {fold: test, start: 0, count: 5}
"""


def _variant(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


# (recipe text, expected YAML path, expected words in the message)
MALFORMED = [
    (GOOD + "nmae: typo\n", "nmae", "unknown field"),
    (_variant("max_steps: 20", "max_stesp: 20"), "env.max_stesp", "unknown field"),
    (_variant("max_steps: 20", "max_steps: many"), "env.max_steps", "valid integer"),
    (_variant("max_steps: 20", "max_steps: -3"), "env.max_steps", "greater than 0"),
    (_variant("count: 10}", "count: 0}"), "env.splits.train.count", "greater than 0"),
    (_variant("game: twc", "game: zork"), "env.game", "unknown TextWorldExpress game"),
    (_variant("numLocations: 1,", "numLocations: 9,"), "env.params.numLocations", "between 1 and 3"),
    (_variant("numLocations: 1,", "bogus: 1,"), "env.params.bogus", "unknown parameter"),
    (_variant("{fold: train, start: 900", "{fold: valid, start: 900"), "env.splits.seen.fold", "must be one of"),
    (_variant("start: 900", "start: 5"), "env.splits.seen", "overlaps splits.train"),
    (_variant("start: 900, count: 5", "start: 990, count: 20"), "env.splits.seen", "exceeds"),
    (_variant("    train: {fold: train, start: 0, count: 10}\n", ""), "env.splits", "'train' split is required"),
    (_variant("name: textworld_express", "name: minecraft"), "env.name", "unknown environment 'minecraft'"),
    (_variant("  name: textworld_express\n", ""), "env.name", "required field is missing (known: "),
    (_variant("max_steps: 20", "max_steps: 20\n  data_dir: games"), "env.data_dir", "unknown field"),
    ("name: tiny\n", "env", "required field is missing"),
    (_variant("name: tiny", "name: my recipe"), "name", "should match pattern"),
    (GOOD + "experts: {source: sharegpt}\n", "experts.path", "required when source is 'sharegpt'"),
    (GOOD + "experts: {thoughts: {backend: gpt}}\n", "experts.thoughts.backend", "'template' or 'openai'"),
    (GOOD + "datasets: [expert, dx]\n", "datasets.1", "Input should be"),
    (GOOD + "output: {formats: [csv]}\n", "output.formats.0", "Input should be"),
]


@pytest.mark.parametrize(("text", "path", "words"), MALFORMED, ids=[m[1] + ":" + m[2][:20] for m in MALFORMED])
def test_malformed_recipe_gives_one_line(tmp_path, text, path, words):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    assert len(info.value.lines) == 1, info.value.lines
    line = info.value.lines[0]
    assert line.startswith(str(recipe)), line
    assert f": {path}: " in line, line
    assert words in line, line
    assert "\n" not in line and "Traceback" not in line


def test_error_points_at_the_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(_variant("max_steps: 20", "max_steps: -3"))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe)
    line_no = GOOD.splitlines().index("  max_steps: 20") + 1
    assert info.value.lines[0].startswith(f"{recipe}:{line_no}: env.max_steps:")


def test_invalid_yaml_and_non_mapping(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nenv: [unclosed\n")
    with pytest.raises(RecipeError, match=r"broken.yaml:\d+: invalid YAML"):
        load_recipe(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(listing)
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_set_overrides(tmp_path):
    recipe = tmp_path / "ok.yaml"
    recipe.write_text(GOOD)
    r = load_recipe(recipe, ["env.max_steps=40", "env.params.numItemsToPutAway=3", "output.dir=/tmp/x"])
    assert r.env.max_steps == 40 and r.env.params["numItemsToPutAway"] == 3
    assert str(r.build_dir) == "/tmp/x" and str(r.cache_path) == "/tmp/x/cache.duckdb"
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe, ["env.max_stpes=3"])
    assert info.value.lines == [f"{recipe}: env.max_stpes: unknown field (from --set env.max_stpes=3)"]
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(recipe, ["env.max_steps"])


def test_fingerprint_ignores_output_location(tmp_path):
    recipe = tmp_path / "ok.yaml"
    recipe.write_text(GOOD)
    a = load_recipe(recipe)
    assert a.fingerprint() == load_recipe(recipe, ["output.dir=/elsewhere"]).fingerprint()
    assert a.fingerprint() != load_recipe(recipe, ["env.max_steps=21"]).fingerprint()


def test_a_field_added_later_moves_no_fingerprint_at_its_default(tmp_path):
    """reflection.template came after builds existed: at its default the fingerprint is the one every earlier
    build has (so no trained model or evaluation is recomputed on upgrade); set, it counts."""
    import hashlib
    import json

    recipe = tmp_path / "ok.yaml"
    recipe.write_text(GOOD)
    a = load_recipe(recipe)
    content = {k: v for k, v in a.content().items() if k not in _FINGERPRINT_SKIPS}
    content["reflection"].pop("template")  # the recipe as it was dumped before the field existed
    before = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    assert a.fingerprint() == before
    assert load_recipe(recipe, ["reflection.template=notice"]).fingerprint() == before
    assert load_recipe(recipe, ["reflection.template=brief"]).fingerprint() != before


_FINGERPRINT_SKIPS = (
    "output", "failures", "executor", "description", "model", "sft", "eval", "reinforce", "experiment", "labels",
)  # fmt: skip


def test_cli_rejects_bad_recipe_with_exit_2_and_no_work(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(
        textwrap.dedent(_variant("numLocations: 1,", "numLocations: 9,")) + f"output: {{dir: {tmp_path}/b}}\n"
    )
    proc = run_cli("build", str(recipe))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "env.params.numLocations" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists(), "a rejected recipe must not start any work"
