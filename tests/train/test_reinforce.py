"""Reinforced training, the DPO ablation and the experiment runner, on real tiny models and a real TWX build.

- the trainer's first-step loss on a two-row batch equals a weighted NLL computed by hand from the rendered
  text (so the per-row weights and the per-turn loss flags are really what it optimises);
- steca-dpo and STeP train on exactly the rows their exports write; the DPO path runs TRL's DPOTrainer;
- the experiment runner finishes, then a rerun is all cache hits (its time added to the earlier runs'), and a
  changed training setting redoes only the trained methods;
- `steca-train reinforce` under a 2-process torchrun (gloo), the weighted objective and a DPO method.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from steca_data.recipe.reinforce import DPOSpec, ReinforceSpec
from tests.conftest import write_recipe

ROWS = [
    {  # Dc-like: the deviated step is context (no loss), the calibrated step bears the loss, weight r_c
        "id": "dc-0",
        "dataset": "dc",
        "reward_weight": 1.4,
        "messages": [
            {"role": "system", "content": "Solve the task.", "loss": False},
            {"role": "user", "content": "Task: tidy up.\nObservation: a fridge.", "loss": False},
            {"role": "assistant", "content": "Thought: hm.\nAction: look around", "loss": False},
            {"role": "user", "content": "Observation: a kitchen.", "loss": False},
            {"role": "assistant", "content": "Thought: wrong move.\nAction: open fridge", "loss": True},
        ],
    },
    {  # De-like: every assistant turn bears the loss, weight r_e < 1
        "id": "de-0",
        "dataset": "de",
        "reward_weight": 0.7,
        "messages": [
            {"role": "system", "content": "Solve the task.", "loss": False},
            {"role": "user", "content": "Task: tidy up.\nObservation: an apple.", "loss": False},
            {"role": "assistant", "content": "Thought: take it.\nAction: take apple", "loss": True},
            {"role": "user", "content": "Observation: taken.", "loss": False},
            {"role": "assistant", "content": "Thought: put it.\nAction: put apple in fridge", "loss": True},
        ],
    },
]


def _hand_nll(model, tokenizer, row: dict) -> tuple[float, int]:
    """Sum of -log p over the tokens of loss-bearing assistant turns (content + end token), found by text search."""
    plain = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    text = tokenizer.apply_chat_template(plain, tokenize=False)
    spans, pos = [], 0
    for m in row["messages"]:
        piece = ("<|assistant|>" if m["role"] == "assistant" else f"<|{m['role']}|>") + m["content"] + "<|end|>"
        at = text.index(piece, pos)
        if m["role"] == "assistant" and m["loss"]:
            spans.append((at + len("<|assistant|>"), at + len(piece)))
        pos = at + len(piece)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    total, count = 0.0, 0
    for t, (start, _) in enumerate(enc["offset_mapping"]):
        if t > 0 and any(a <= start < b for a, b in spans):
            total -= logp[t - 1, ids[0, t]].item()
            count += 1
    return total, count


def test_reinforce_loss_is_the_hand_computed_weighted_nll(init_model_dir, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from steca_data.training.data import rows_to_examples
    from steca_data.training.trainer import train
    from steca_train.reinforce import objective_rows

    model = AutoModelForCausalLM.from_pretrained(str(init_model_dir), dtype=torch.float32)
    parts = [_hand_nll(model, tokenizer, row) for row in ROWS]
    n_tokens = sum(c for _, c in parts)
    weighted = sum(row["reward_weight"] * s for row, (s, _) in zip(ROWS, parts, strict=True)) / n_tokens
    plain = sum(s for s, _ in parts) / n_tokens
    assert abs(weighted - plain) > 1e-3  # the weights matter for this batch

    spec = ReinforceSpec(max_steps=1, log_every=1, lr=1e-9, warmup_steps=0, batch_tokens=100_000, threads=1)
    for rows, expected in ((objective_rows(ROWS, True), weighted), (objective_rows(ROWS, False), plain)):
        examples, _ = rows_to_examples(rows, tokenizer, None, 768)
        assert len(examples) == 2
        result = train(spec, init_model_dir, examples, tmp_path / "out", tokenizer, pad_id=tokenizer.pad_token_id)
        assert math.isclose(result.history[0]["loss"], expected, abs_tol=2e-5), (result.history[0], expected)


# --------------------------------------------------------------------------------------- engine build
@pytest.fixture(scope="module")
def experiment_recipe(tmp_path_factory, trained_model_dir):
    """A tiny experiment: the session's trained tiny model as base agent, 3 explored tasks, 2 eval tasks."""
    root = tmp_path_factory.mktemp("experiment")
    return write_recipe(
        root,
        name="exp",
        train=20,
        env={"params": {"numLocations": 1, "numItemsToPutAway": 1}, "max_steps": 8},
        prompt={"include_example": False, "history": 2},
        datasets=["expert", "dc", "de", "ds"],
        policy={"backend": "transformers", "model": str(trained_model_dir), "max_new_tokens": 32, "threads": 1},
        rollouts={"n": 2, "tasks": 4},
        reward={"eta": 1.0},
        # delta 1: every proposal that differs from the expert counts as deviated, so Dc does not hang on
        # whether this tiny model's Monte Carlo values happen to dip (they did not, in one test order)
        deviation={"delta": 1.0},
        eval={"splits": ["seen", "unseen"], "limit": 2, "greedy": False, "samples": 1},
        reinforce={"max_steps": 2, "batch_tokens": 2048, "threads": 1, "dpo": {"batch_size": 2, "max_turns": 2}},
        experiment={
            "seeds": [0],
            "methods": ["sft", "steca", "steca-dpo"],
            "calibration": {"splits": ["unseen"], "tasks": 2},
        },
    )


def test_methods_train_on_the_bytes_their_exports_write(experiment_recipe, tokenizer, tmp_path):
    """steca-dpo's pairs are `export --format trl-dpo`'s kind-steca rows, STeP's rows are `--format step`'s
    (pairs are built once, by each method's data module, export/methods/); then one DPO run on them."""
    from datasets import load_from_disk

    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.export import BuildDir, export_build
    from steca_data.recipe.model import load_recipe
    from steca_train.dpo import assistant_only_collator, train_dpo, trainer_pairs
    from steca_train.methods import method

    recipe = load_recipe(experiment_recipe)
    Builder(recipe, Reporter(quiet=True)).build()
    build = BuildDir.open(recipe.build_dir)
    trained_on = method("steca-dpo").data(build, recipe)
    step_rows = method("step").data(build, recipe)
    build.close()
    for fmt in ("trl-dpo", "step"):
        export_build(recipe.build_dir, fmt, tmp_path / fmt)
    exported = load_from_disk(str(tmp_path / "trl-dpo" / "dataset"))["train"].to_list()
    assert trained_on, "the tiny agent deviates somewhere on 4 tasks, and some deviated continuation fails"
    assert trained_on == [row for row in exported if row["kind"] == "steca"]
    step_export = load_from_disk(str(tmp_path / "step" / "dataset"))["train"].to_list()
    assert step_export and step_rows[-len(step_export) :] == step_export
    assert all(row["dataset"] == "expert" for row in step_rows[: -len(step_export)])

    pairs = trainer_pairs(trained_on, recipe.prompt.history, max_turns=2)
    assert pairs
    for pair in pairs:
        assert pair["prompt"][-1]["role"] == "user" and pair["chosen"][-1]["role"] == "assistant"
        assert sum(m["role"] == "assistant" for m in pair["chosen"]) <= 2
    # the collator keeps the loss on assistant tokens only
    collator = assistant_only_collator(tokenizer)
    text = tokenizer.apply_chat_template(pairs[0]["prompt"], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chosen = tokenizer("Thought: a\nAction: b<|end|><|user|>Observation: c<|end|><|assistant|>d<|end|>")["input_ids"]
    batch = collator([{"prompt_ids": list(ids), "chosen_ids": chosen, "rejected_ids": chosen}])
    kept = tokenizer.decode(batch["input_ids"][0][batch["completion_mask"][0].bool()])
    assert "Observation" not in kept and "<|user|>" not in kept and kept.endswith("d<|end|>")

    init = recipe.policy.model
    log = train_dpo(DPOSpec(batch_size=2, max_turns=2), init, pairs[:2], tmp_path / "dpo", seed=0, threads=1)
    assert log["steps"] >= 1 and all(math.isfinite(h["loss"]) for h in log["history"])
    assert (tmp_path / "dpo" / "config.json").is_file()


class Killed(Exception):
    """What the test's stand-in for a kill raises."""


def test_experiment_runs_then_resumes_from_its_cache(experiment_recipe, monkeypatch):
    """Killed while training its last unit, the experiment resumes at that unit: what was trained stands."""
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe
    from steca_train.experiment import run_experiment
    from steca_train.methods import method

    recipe = load_recipe(experiment_recipe)
    dpo = type(method("steca-dpo"))
    with monkeypatch.context() as m:
        m.setattr(dpo, "train", lambda self, run: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            run_experiment(recipe, Reporter(quiet=True))
    first = run_experiment(recipe, Reporter(quiet=True))
    out = recipe.build_dir / "experiment"
    for name in ("results.json", "results.md", "methods.png", "losses.png", "twc.json", "twc.png", "twc.md"):
        assert (out / name).is_file(), name
    headline = json.loads((out / "twc.json").read_text())
    assert headline["calibration"]["split"] == "unseen"  # cases by the Monte Carlo rule (delta 1: any differing)
    assert set(headline["calibration"]["methods"]) == {"sft", "steca", "steca-dpo"}
    assert {r["method"] for r in first["table"]} == {"sft", "steca", "steca-dpo"}
    assert {r["split"] for r in first["table"]} == {"seen", "unseen"}
    status = {s["name"]: s["status"] for s in first["steps"]}
    assert status["train steca-sft s0"] == status["train steca s0"] == "cached"  # trained before the kill
    assert status["train steca-dpo s0"] == "computed" and status["eval steca s0"] == "computed"

    assert first["seconds_total"] > first["seconds"]  # the killed run's time counts too (elapsed.json)

    again = run_experiment(recipe, Reporter(quiet=True))
    assert {s["status"] for s in again["steps"]} == {"cached"}, again["steps"]
    assert again["table"] == first["table"]
    assert again["headline"]["methods"] == first["headline"]["methods"]  # the same per-task outcomes, from cache
    assert math.isclose(again["seconds_total"], first["seconds_total"] + again["seconds"], abs_tol=1.0)
    assert again["headline"]["minutes"] == round(again["seconds_total"] / 60, 1)

    changed = load_recipe(experiment_recipe, ["reinforce.lr=2e-3"])
    third = run_experiment(changed, Reporter(quiet=True))
    assert third["seconds_total"] == third["seconds"]  # other settings: another experiment's time
    computed = {s["name"] for s in third["steps"] if s["status"] == "computed"}
    assert "build" not in computed and "eval sft s0" not in computed
    assert {"train steca s0", "eval steca s0", "train steca-dpo s0"} <= computed
    doc = json.loads((out / "results.json").read_text())
    assert doc["data_fingerprint"] == first["data_fingerprint"]


def test_reinforce_cli_trains_and_rejects_bad_input(experiment_recipe, tmp_path):
    from typer.testing import CliRunner

    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe
    from steca_train.cli import app

    recipe = load_recipe(experiment_recipe)
    Builder(recipe, Reporter(quiet=True)).build()  # cached by the tests above
    build, model = str(recipe.build_dir), recipe.policy.model
    runner = CliRunner()
    bad = runner.invoke(app, ["reinforce", "--data", build, "--model", model, "--method", "ppo"])
    assert bad.exit_code == 2 and "--method: unknown method 'ppo'" in bad.output
    missing = runner.invoke(app, ["reinforce", "--data", str(tmp_path), "--method", "steca"])
    assert missing.exit_code == 2 and "not a steca-data build" in missing.output
    out = tmp_path / "steca"
    args = ["reinforce", "--data", build, "--method", "steca", "--model", model, "--out", str(out), "-q",
            "--set", "reinforce.max_steps=1"]  # fmt: skip
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 1 and (out / "config.json").is_file()


def test_quiet_training_logs_its_progress(experiment_recipe, tmp_path):
    """`-q` is log lines instead of bars, not silence: the training commands once set up logging with a
    basicConfig that the entry point's own handler turned into a no-op, so a long experiment logged nothing."""
    import re
    import subprocess
    import sys

    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    recipe = load_recipe(experiment_recipe)
    Builder(recipe, Reporter(quiet=True)).build()  # cached by the tests above
    args = ["reinforce", "--data", str(recipe.build_dir), "--method", "steca", "--model", recipe.policy.model,
            "--out", str(tmp_path / "steca"), "-q", "--set", "reinforce.max_steps=2"]  # fmt: skip
    main = "import sys; from steca_train.cli import main; sys.argv = ['steca-train', *sys.argv[1:]]; main()"
    proc = subprocess.run([sys.executable, "-c", main, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\d{4}-\d\d-\d\d [\d:,]+ .*2/2 steps", proc.stderr, re.MULTILINE), proc.stderr


@pytest.mark.parametrize(
    ("method", "sets"),
    [("steca", ["reinforce.max_steps=2", "reinforce.grad_accum=2"]),
     ("steca-dpo", ["reinforce.dpo.max_steps=1", "reinforce.dpo.batch_size=2"])],
)  # fmt: skip
def test_reinforce_cli_under_torchrun(experiment_recipe, tmp_path, method, sets):
    """The documented launch, `torchrun --nproc-per-node 2 "$(command -v steca-train)" reinforce ...`, on gloo:
    the weighted objective (DDP) and a DPO method (TRL through accelerate) train and write their model."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    recipe = load_recipe(experiment_recipe)
    Builder(recipe, Reporter(quiet=True)).build()  # cached by the tests above
    out = tmp_path / method
    script = Path(sys.executable).with_name("steca-train")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           "reinforce", "--data", str(recipe.build_dir), "--method", method, "--model", recipe.policy.model,
           "--out", str(out), "-q", *[a for s in sets for a in ("--set", s)]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"trained {method}" in proc.stdout + proc.stderr
    assert (out / "config.json").is_file() and (out / "train_log.json").is_file()
