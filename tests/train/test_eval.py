"""``steca-train`` commands end to end on the tiny recipe: eval (random and model), reports, cache rows, errors."""

from __future__ import annotations

import json

import duckdb
from typer.testing import CliRunner

from steca_train.cli import app
from steca_train.evaluate import mean_ci, wilson

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_intervals():
    low, high = wilson(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson(10, 20)
    assert low < 0.5 < high
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_eval_random_stores_episodes_and_reuses_them(tiny_recipe_path, tiny_recipe, scratch):
    report = scratch / "random.json"
    code, out = _run("eval", "--recipe", tiny_recipe_path, "--policy", "random", "--out", report)
    assert code == 0, out
    doc = json.loads(report.read_text())
    rows = {r["split"]: r for r in doc["results"]}
    assert set(rows) == {"seen", "unseen"} and rows["seen"]["episodes"] == 4
    assert 0.0 <= rows["unseen"]["avg_reward"] <= 1.0 and rows["unseen"]["computed"] == 4
    lo, hi = rows["seen"]["success_ci95"]
    assert lo <= rows["seen"]["success_rate"] <= hi
    con = duckdb.connect(str(tiny_recipe.cache_path), read_only=True)
    n = con.execute("select count(*) from trajectories where source = 'eval' and policy_id = 'random'").fetchone()[0]
    con.close()
    assert n == 8
    code, out = _run("eval", "--recipe", tiny_recipe_path, "--policy", "random", "--out", report)
    assert code == 0, out
    assert all(r["computed"] == 0 and r["cached"] == 4 for r in json.loads(report.read_text())["results"])


def test_eval_model_greedy_and_sampled(tiny_recipe_path, tiny_recipe, trained_model_dir, scratch):
    report = scratch / "model.json"
    code, out = _run(
        "eval", "--recipe", tiny_recipe_path, "--model", trained_model_dir, "--split", "unseen",
        "--samples", "2", "--temperature", "1.0", "--limit", "2", "--out", report,
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(report.read_text())
    modes = {r["mode"]: r for r in doc["results"]}
    assert set(modes) == {"greedy", "sampled T=1"}
    assert modes["greedy"]["episodes"] == 2 and modes["sampled T=1"]["episodes"] == 4
    assert doc["prompt_version"] == "twx-v1" and doc["policy_id"].startswith("hf:sft:")
    con = duckdb.connect(str(tiny_recipe.cache_path), read_only=True)
    rows = con.execute(
        "select constrained_actions, prompt_version, count(*) from trajectories "
        "where source = 'eval' and policy_id = ? group by all",
        [doc["policy_id"]],
    ).fetchall()
    con.close()
    assert rows == [(True, "twx-v1", 6)]


def test_bad_input_is_one_clear_line(tiny_recipe_path, scratch):
    code, out = _run("eval", "--recipe", tiny_recipe_path, "--split", "bogus", "--policy", "random")
    assert code == 2 and "split 'bogus' is not in env.splits" in out
    code, out = _run("eval", "--recipe", tiny_recipe_path, "--model", scratch / "nothing")
    assert code == 2 and "not a model directory" in out
    code, out = _run("sft", "--recipe", tiny_recipe_path, "--model", scratch / "nothing")
    assert code == 2 and "not a model directory" in out  # bad input: exit 2 (issue 21)
    bad = scratch / "bad.yaml"
    bad.write_text(tiny_recipe_path.read_text().replace("num_heads: 2", "num_heads: 5"))
    code, out = _run("init-model", "--recipe", bad)
    assert code == 2 and "model.num_heads: must divide hidden_size 64 (got 5)" in out
    assert f"{bad}:" in out  # file and line


def test_recipe_agent_fields_are_validated(tiny_recipe_path, scratch):
    from steca_data.recipe.model import RecipeError, load_recipe

    for override, message in [
        ("policy.backend=gpt", "policy.backend: Input should be"),
        ("policy.backend=openai", "policy.base_url: required when backend is 'openai'"),
        ("sft.lr=5", "sft.lr: Input should be less than 1"),
        ("eval.samples=-1", "eval.samples: Input should be greater than or equal to 0"),
        ("prompt.history=-2", "prompt.history: Input should be greater than or equal to 0"),
        ("sft.lora.rank=3", "sft.lora.rank: unknown field"),
    ]:
        try:
            load_recipe(tiny_recipe_path, [override])
        except RecipeError as exc:
            assert len(exc.lines) == 1 and message in exc.lines[0], exc.lines
        else:
            raise AssertionError(f"{override} was accepted")


def test_init_model_and_sft_commands(tiny_recipe_path, tiny_recipe, scratch):
    code, out = _run("init-model", "--recipe", tiny_recipe_path, "--out", scratch / "init")
    assert code == 0 and "parameters" in out, out
    code, out = _run(
        "sft", "--recipe", tiny_recipe_path, "--model", scratch / "init", "--out", scratch / "sft",
        "--set", "sft.max_steps=3",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads((scratch / "sft" / "train_log.json").read_text())["steps"] == 3
    assert (scratch / "sft" / "tokenizer.json").is_file()
