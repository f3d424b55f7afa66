"""Malformed inputs to both CLIs: every one exits 2 with at most two lines on stderr, no traceback, and
writes nothing (no build directory, no cache). Valid controls still plan and build.

Each case runs in-process under the real entry point (``run_app``), in an empty folder holding only the
files the case needs; imports are covered by the importer tests.
"""

from __future__ import annotations

import codecs
import re
import time
from pathlib import Path

import pytest

from tests.hardening.conftest import snapshot

GOOD = """\
name: tiny
env:
  name: textworld_express
  game: twc
  params: {numLocations: 1, numItemsToPutAway: 2}
  max_steps: 20
  workers: 1
  splits:
    train: {fold: train, start: 0, count: 2}
    seen: {fold: train, start: 900, count: 1}
    unseen: {fold: test, start: 0, count: 1}
prompt: {include_example: false}
output: {dir: out/build}
"""


def _with(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
ALFWORLD_OVERLAP = """\
name: alf
env:
  name: alfworld
  game: all
  splits:
    seen: {fold: train, start: 10, count: 5}
    train: {fold: train, start: 0, count: 50}
    unseen: {fold: valid_unseen, start: 0, count: 5}
"""

# id -> (recipe text or bytes, extra files to create, expected words on the error line)
RECIPES: dict[str, tuple[str | bytes, dict[str, str | None], list[str]]] = {
    "duplicate-section": (GOOD + "env: {name: textworld_express}\n", {}, [":14: env: duplicate key", "line 2"]),
    "duplicate-field": (_with("  max_steps: 20\n", "  max_steps: 20\n  max_steps: 40\n"), {}, [":7: env.max_steps"]),
    "alias-bomb": (BOMB, {}, ["alias bomb"]),
    "recursive-alias": ("name: &a [*a]\n", {}, ["recursive"]),
    "deep-nesting": ("name: " + "[" * 500 + "]" * 500 + "\n", {}, ["nested more than"]),
    "utf16-bom": (GOOD.encode("utf-16"), {}, ["UTF-16", "UTF-8"]),
    "utf16-no-bom": (GOOD.encode("utf-16-le"), {}, ["binary"]),
    "utf32": (codecs.BOM_UTF32_LE + GOOD.encode("utf-32-le"), {}, ["UTF-32"]),
    "latin1": (_with("game: twc", "game: twc  # café").encode("latin-1"), {}, [":4:", "not UTF-8"]),
    "binary": (bytes(range(256)) * 4, {}, ["binary"]),
    "empty": ("", {}, ["name: required field is missing"]),
    "not-a-mapping": ("- a\n- b\n", {}, ["must be a mapping"]),
    "tab-indent": (_with("  game: twc", "\tgame: twc"), {}, [":4: invalid YAML"]),
    "count-true": (_with("count: 2}", "count: true}"), {}, [":9: env.splits.train.count", "not a boolean"]),
    "temperature-false": (GOOD + "policy: {temperature: false}\n", {}, ["policy.temperature", "not a boolean"]),
    "seeds-bool": (GOOD + "experiment: {seeds: [0, true]}\n", {}, ["experiment.seeds.1"]),
    "heap-too-small": (_with("  workers: 1\n", "  workers: 1\n  jvm_max_heap: 1m\n"), {}, ["between 32m and 64g"]),
    "heap-too-large": (_with("  workers: 1\n", "  workers: 1\n  jvm_max_heap: 99999g\n"), {}, ["between 32m"]),
    "heap-unit": (_with("  workers: 1\n", "  workers: 1\n  jvm_max_heap: 2gb\n"), {}, ["m or g"]),
    "name-pattern": (_with("name: tiny", "name: my recipe"), {}, ["^[A-Za-z0-9_.-]+$"]),
    "markup-in-value": (_with("game: twc", "game: '[red]abc[/red] [/x]'"), {}, ["'[red]abc[/red] [/x]'"]),
    "markup-in-key": (GOOD + "'[/x]': 1\n", {}, ["[/x]: unknown field"]),
    "output-dir-under-file": (_with("dir: out/build", "dir: blocker/build"), {"blocker": "x"}, ["output.dir"]),
    "output-cache-is-dir": (
        GOOD.replace("output: {dir: out/build}", "output: {cache: somedir}"),
        {"somedir/": None},
        ["output.cache"],
    ),
    "policy-model-missing": (GOOD + "policy: {model: no/such/model}\n", {}, ["policy.model", "no model at"]),
    "policy-model-not-a-model": (GOOD + "policy: {model: emptydir}\n", {"emptydir/": None}, ["not a model directory"]),
    "model-path-missing": (GOOD + "model: {path: missing-model}\n", {}, ["model.path"]),
    "sharegpt-missing": (GOOD + "experts: {source: sharegpt, path: none.json}\n", {}, ["experts.path", "not found"]),
    "sharegpt-dir": (GOOD + "experts: {source: sharegpt, path: adir}\n", {"adir/": None}, ["is a directory"]),
    "failure-rate": (GOOD + "failures: {max_rate: 2}\n", {}, ["failures.max_rate"]),
    "openai-key-missing": (
        GOOD + "experts: {thoughts: {backend: openai, api_key_env: STECA_TEST_NO_SUCH_KEY}}\n",
        {},
        ["experts.thoughts.api_key_env", "$STECA_TEST_NO_SUCH_KEY is not set"],
    ),
    "alfworld-overlap": (ALFWORLD_OVERLAP, {}, [f":{_line_of(ALFWORLD_OVERLAP, 'seen:')}: env.splits.seen: overlaps"]),
    "unknown-field": (GOOD + "nmae: typo\n", {}, [":14: nmae: unknown field"]),
}


def _materialise(tmp_path: Path, text: str | bytes, files: dict[str, str | None]) -> Path:
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir(parents=True)
        else:
            (tmp_path / name).write_text(content)
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(text if isinstance(text, bytes) else text.encode())
    return recipe


def _assert_rejected(result, before: set[str], tmp_path: Path, words: list[str] = ()) -> None:
    assert result.code == 2, (result.code, result.err)
    assert 1 <= len(result.err_lines) <= 2, result.err
    assert "Traceback" not in result.err and "Traceback" not in result.out
    for word in words:
        assert word in result.err_lines[0], (word, result.err)
    assert snapshot(tmp_path) == before, "a rejected command must write nothing"


@pytest.mark.parametrize("case", list(RECIPES))
def test_malformed_recipe(cli, tmp_path, case):
    text, files, words = RECIPES[case]
    _materialise(tmp_path, text, files)
    before = snapshot(tmp_path)
    result = cli("build", "r.yaml")
    _assert_rejected(result, before, tmp_path, words)
    assert result.err_lines[0].startswith("error: r.yaml")


def test_alias_bomb_is_rejected_in_well_under_a_second(tmp_path):
    from steca_data.recipe.model import RecipeError, load_recipe

    (tmp_path / "bomb.yaml").write_text(BOMB)  # 10^9 nodes once expanded
    start = time.monotonic()
    with pytest.raises(RecipeError, match="alias bomb"):
        load_recipe(tmp_path / "bomb.yaml")
    assert time.monotonic() - start < 0.5


# --set overrides: each names the override instead of a file line
SETS = {
    "unknown-field": (["env.max_stpes=3"], ["env.max_stpes: unknown field (from --set env.max_stpes=3)"]),
    "bad-value": (["env.max_steps=many"], ["(from --set env.max_steps=many)"]),
    "boolean-count": (["env.splits.train.count=true"], ["not a boolean", "(from --set"]),
    "overlap": (["env.splits.seen.start=1"], ["env.splits.seen: overlaps", "(from --set env.splits.seen.start=1)"]),
    "no-equals": (["env.max_steps"], ["expected KEY=VALUE"]),
    "empty-key": (["=3"], ["expected KEY=VALUE"]),
    "empty-part": (["env..max_steps=3"], ["not a field path"]),
    "into-a-scalar": (["env.game.x=1"], ["env.game is not a mapping"]),
    "heap": (["env.jvm_max_heap=1m"], ["(from --set env.jvm_max_heap=1m)"]),
    "markup": (["env.game='[red]x[/red] [/x]'"], ["'[red]x[/red] [/x]'"]),
    "output-under-file": (["output.dir=blocker/x"], ["output.dir", "(from --set output.dir=blocker/x)"]),
    "rollout-scope": (["rollouts.scope=first"], ["rollouts.scope: Input should be 'all' or 'first_deviation'"]),
}


@pytest.mark.parametrize("case", list(SETS))
def test_malformed_set(cli, tmp_path, case):
    overrides, words = SETS[case]
    _materialise(tmp_path, GOOD, {"blocker": "x"})
    before = snapshot(tmp_path)
    result = cli("plan", "r.yaml", *[a for o in overrides for a in ("--set", o)])
    _assert_rejected(result, before, tmp_path, words)
    assert not re.match(r"error: r\.yaml:\d", result.err_lines[0]), "a --set problem has no line in the file"


# CLI arguments of both tools
ARGS = {
    "unknown-command": (["nosuch"], ["No such command"]),
    "missing-argument": (["build"], ["Missing argument"]),
    "unknown-option": (["build", "r.yaml", "--bogus"], ["No such option"]),
    "recipe-missing": (["build", "missing.yaml"], ["missing.yaml: recipe file not found"]),
    "recipe-is-dir": (["plan", "."], ["is a directory"]),
    "sql-empty": (["sql", ""], ["empty query"]),
    "sql-blank": (["sql", "  ;  "], ["no statement"]),
    "sql-syntax": (["sql", "selec 1"], ["syntax error"]),
    "sql-copy": (["sql", "copy (select 1) to 'x.csv'"], ["COPY"]),
    "sql-export": (["sql", "export database 'x'"], ["EXPORT"]),
    "sql-attach": (["sql", "attach 'x.duckdb' as x"], ["ATTACH"]),
    "sql-install": (["sql", "install httpfs"], ["LOAD"]),
    "sql-load": (["sql", "load httpfs"], ["LOAD"]),
    "sql-set": (["sql", "set threads = 1"], ["SET"]),
    "sql-pragma": (["sql", "pragma version"], ["PRAGMA"]),
    "sql-second-statement": (["sql", "select 1; set threads = 1"], ["SET"]),
    "sql-format": (["sql", "select 1", "--format", "xml"], ["--format"]),
    "sql-no-cache": (["sql", "select 1", "--db", "none.duckdb"], ["no cache at none.duckdb"]),
    "sql-no-builds": (["sql", "select 1"], ["no --db given"]),
    "inspect-not-a-build": (["inspect", "."], ["is not a build directory"]),
    "inspect-missing": (["inspect", "nowhere"], ["does not exist"]),
    "inspect-negative-n": (["inspect", ".", "--n", "-1"], ["--n"]),
    "report-not-a-build": (["report", "."], ["no cache.duckdb"]),
    "bench-zero-n": (["bench", "r.yaml", "--n", "0"], ["--n"]),
    "bench-zero-reference-every": (["bench", "r.yaml", "--reference-every", "0"], ["--reference-every"]),
    "push-not-a-build": (["push", ".", "someone/x"], ["not a build directory"]),
    "plan-bad-recipe": (["plan", "r.yaml", "--set", "seed=x"], ["seed"]),
}
TRAIN_ARGS = {
    "eval-limit-negative": (["eval", "--recipe", "r.yaml", "--limit", "-5"], ["--limit"]),
    "eval-limit-zero": (["eval", "--recipe", "r.yaml", "--limit", "0"], ["--limit"]),
    "eval-samples-negative": (["eval", "--recipe", "r.yaml", "--samples", "-1"], ["--samples"]),
    "eval-temperature-zero": (["eval", "--recipe", "r.yaml", "--temperature", "0"], ["--temperature"]),
    "eval-policy": (["eval", "--recipe", "r.yaml", "--policy", "smart"], ["--policy must be 'random'"]),
    "eval-split": (["eval", "--recipe", "r.yaml", "--policy", "random", "--split", "nosuch"], ["nosuch"]),
    "eval-no-model": (["eval", "--recipe", "r.yaml", "--model", "nomodel"], ["not a model directory"]),
    "sft-bad-set": (["sft", "--recipe", "r.yaml", "--set", "sft.lr=2"], ["sft.lr", "(from --set sft.lr=2)"]),
    "init-model-bad-recipe": (["init-model", "--recipe", "missing.yaml"], ["recipe file not found"]),
    "train-unknown-command": (["nosuch"], ["No such command"]),
    "train-missing-recipe-option": (["eval"], ["--recipe"]),
}


@pytest.mark.parametrize("case", list(ARGS))
def test_malformed_arguments(cli, tmp_path, case):
    args, words = ARGS[case]
    _materialise(tmp_path, GOOD, {})
    before = snapshot(tmp_path)
    _assert_rejected(cli(*args), before, tmp_path, words)


@pytest.mark.parametrize("case", list(TRAIN_ARGS))
def test_malformed_train_arguments(cli, tmp_path, case):
    args, words = TRAIN_ARGS[case]
    _materialise(tmp_path, GOOD, {})
    before = snapshot(tmp_path)
    _assert_rejected(cli(*args, tool="train"), before, tmp_path, words)


def test_debug_shows_the_traceback_and_plain_runs_never_do(cli, tmp_path):
    _materialise(tmp_path, GOOD, {})
    (tmp_path / "cache.duckdb").write_bytes(b"not a database" * 100)
    plain = cli("sql", "select 1", "--db", "cache.duckdb")
    assert plain.code == 1 and len(plain.err_lines) == 1 and "damaged" in plain.err and "Traceback" not in plain.err
    with pytest.raises(Exception, match="damaged"):
        cli("--debug", "sql", "select 1", "--db", "cache.duckdb")
    with pytest.raises(Exception, match="damaged"):
        cli("sql", "select 1", "--db", "cache.duckdb", "--debug")


def test_valid_controls_plan_without_writing_and_build(cli, tmp_path):
    _materialise(tmp_path, GOOD, {})
    before = snapshot(tmp_path)
    planned = cli("plan", "r.yaml")
    assert planned.code == 0, planned.err
    assert "gold" in planned.out and snapshot(tmp_path) == before, "plan computes and writes nothing"
    built = cli("build", "r.yaml", "--quiet", "--set", "env.jvm_max_heap=64m")
    assert built.code == 0, built.err
    assert (tmp_path / "out" / "build" / "parquet" / "expert.parquet").is_file()
    inspected = cli("inspect", "out/build", "--n", "0")
    assert inspected.code == 0 and "expert" in inspected.out, inspected.err
