"""``steca-data export`` on a real engine build (random policy): every format loads, its counts match the
build and its cache, the bytes are the same twice, TRL's trainers take the data, ShareGPT round-trips.

One small build per session (4 twc tasks, 2 rollouts per prefix) and one export per format per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from datasets import load_from_disk

from steca_data.export import FORMATS, ExportError, export_build
from tests.conftest import write_recipe

ENGINE = {"policy": {"backend": "random"}, "rollouts": {"n": 2}, "datasets": ["expert", "dc", "de", "ds"]}


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    recipe = load_recipe(write_recipe(tmp_path_factory.mktemp("export-build"), name="exp", train=4, **ENGINE))
    Builder(recipe, Reporter(quiet=True)).build()
    return recipe.build_dir


@pytest.fixture(scope="module")
def exports(build_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {fmt: export_build(build_dir, fmt, root / fmt).out for fmt in FORMATS}


@pytest.fixture(scope="module")
def build_rows(build_dir) -> dict[str, list[dict]]:
    dd = load_from_disk(str(build_dir / "dataset"))
    return {name: sorted(dd[name].to_list(), key=lambda r: r["id"]) for name in dd}


def _sql(build_dir: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(build_dir / "cache.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _loss_turns(row: dict) -> list[str]:
    return [m["content"] for m in row["messages"] if m["role"] == "assistant" and m["loss"]]


def _alternates(turns: list[dict]) -> bool:
    """FastChat's assertion: human and gpt strictly alternate, starting with human."""
    return all(t["from"] == ("human", "gpt")[i % 2] for i, t in enumerate(turns))


# ------------------------------------------------------------------------------------------ what's written
def test_trl_sft_rows_are_the_build_rows_split_at_their_loss(exports, build_rows):
    dd = load_from_disk(str(exports["trl-sft"] / "dataset"))
    assert set(dd) == set(build_rows) == {"expert", "dc", "de", "ds"}
    assert all(len(build_rows[n]) > 0 for n in ("dc", "de", "ds")), "the test build should exercise every dataset"
    for name, rows in build_rows.items():
        out = dd[name].to_list()
        assert [r["id"] for r in out] == [r["id"] for r in rows]
        for got, row in zip(out, rows, strict=True):
            assert got["prompt"] + got["completion"] == got["messages"]
            assert [m["content"] for m in got["messages"]] == [m["content"] for m in row["messages"]]
            assert [m["content"] for m in got["completion"] if m["role"] == "assistant"] == _loss_turns(row)
            assert got["reward_weight"] == row["reward_weight"]
    dc = dd["dc"][0]
    deviated = [m for m in dc["prompt"] if m["role"] == "assistant"][-1]["content"]
    assert deviated.endswith(f"Action: {build_rows['dc'][0]['deviated_action']}")  # context, not completion
    import pyarrow.parquet as pq

    assert {n: pq.read_table(exports["trl-sft"] / "parquet" / f"{n}.parquet").num_rows for n in dd} == {
        n: len(r) for n, r in build_rows.items()
    }


def test_trl_dpo_pairs_match_the_cache(exports, build_dir, build_rows):
    rows = load_from_disk(str(exports["trl-dpo"] / "dataset"))["train"].to_list()
    kinds = {k: [r for r in rows if r["kind"] == k] for k in ("steca", "ipr", "eto")}
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    # ipr: every (task, t) whose expert step and differing proposal have different Monte Carlo rewards
    ipr = _sql(
        build_dir,
        """select e.task_id, e.step, e.reward, p.reward from step_rewards e join step_rewards p
           on e.task_id = p.task_id and e.step = p.step and e.kind = 'expert' and p.kind = 'proposal'
           where e.reward <> p.reward order by 1, 2""",
    )
    assert [(r["task_id"], r["step"]) for r in kinds["ipr"]] == [(t, s) for t, s, _, _ in ipr]
    for row, (_, _, v, q) in zip(kinds["ipr"], ipr, strict=True):
        assert row["margin"] == pytest.approx(abs(v - q)) and row["chosen_score"] == max(v, q)
        assert len(row["chosen"]) == len(row["rejected"]) == 1 and row["prompt"][-1]["role"] == "user"
    # eto: distinct failed explorations (from the start state) per task
    failed = _sql(
        build_dir,
        "select task_id, count(distinct actions) from rollouts where kind = 'expert' and step = 0 and not success "
        "group by 1",
    )
    assert len(kinds["eto"]) == sum(n for _, n in failed)
    # steca: one pair per Dc row whose deviated continuation goes on and fails
    deviated = dict(_sql(build_dir, "select key, success from rollouts"))
    steca_ids = sorted(r["id"] for r in build_rows["dc"] if not deviated[r["provenance"]["rollout_ids"][0]])
    assert sorted(r["id"] for r in kinds["steca"]) == steca_ids
    dc = {r["id"]: r for r in build_rows["dc"]}
    for row in kinds["steca"]:
        assert [m["content"] for m in row["chosen"] if m["role"] == "assistant"] == _loss_turns(dc[row["id"]])
        assert row["weight"] == dc[row["id"]]["reward_weight"]
        assert row["chosen"][-1]["role"] == row["rejected"][-1]["role"] == "assistant"
    assert rows == sorted(rows, key=lambda r: (r["kind"], r["task_id"], r["step"], r["id"]))


def test_sharegpt_files_have_the_peers_fields(exports, build_rows, tmp_path):
    from datasets import load_dataset

    out = exports["sharegpt"]
    dpo = load_from_disk(str(exports["trl-dpo"] / "dataset"))["train"].to_list()
    expected = {
        "expert.json": len(build_rows["expert"]),
        "de.json": len(build_rows["de"]),
        "ipr_pm.json": sum(r["kind"] == "ipr" for r in dpo),
        "eto_pm.json": sum(r["kind"] == "eto" for r in dpo),
    }
    for name, n in expected.items():
        assert len(load_dataset("json", data_files=str(out / name), cache_dir=str(tmp_path))["train"]) == n, name
    for name in ("expert.json", "de.json"):
        for record in json.loads((out / name).read_text()):
            assert {"id", "conversations", "reward"} <= set(record) and _alternates(record["conversations"])
            assert record["conversations"][1] == {"from": "gpt", "value": "OK"}
    rft = json.loads((out / "steca_rft.json").read_text())
    assert {r["source"] for r in rft} == {"dc", "ds", "de"}
    assert sum(r["source"] == "dc" for r in rft) == sum(r["kind"] == "steca" for r in dpo)
    for name in ("steca_rft.json", "ipr_pm.json", "eto_pm.json"):
        for record in json.loads((out / name).read_text()):
            assert {"id", "prompt", "chosen", "rejected"} <= set(record)
            assert _alternates(record["prompt"] + record["chosen"]) and _alternates(
                record["prompt"] + record["rejected"]
            )
            assert record["chosen"][-1]["from"] == record["rejected"][-1]["from"] == "gpt"
    assert all({"deviation", "reward"} <= set(r) for r in rft)


def test_step_rows_mask_the_erroneous_step(exports, build_rows):
    rows = load_from_disk(str(exports["step"] / "dataset"))["train"].to_list()
    assert [r["id"] for r in rows] == [r["id"] for r in build_rows["dc"]]
    for row, dc in zip(rows, build_rows["dc"], strict=True):
        assert [m["loss"] for m in row["messages"]] == [m["loss"] for m in dc["messages"]]
        turns = [m for m in row["messages"] if m["role"] == "assistant"]
        t = row["step"]
        assert turns[t - 1]["segment"] == "error" and not turns[t - 1]["loss"]
        assert turns[t - 1]["content"].endswith(f"Action: {row['erroneous_action']}")
        assert turns[t]["segment"] == "reflection" and turns[t]["loss"]
        assert turns[t]["content"] == f"Thought: {row['reflection']}\nAction: {row['corrected_action']}"
        assert all(m["loss"] for m in turns[t:]) and not any(m["loss"] for m in turns[: t - 1])


def test_cards_say_what_and_from_which_recipe(exports, build_rows):
    fingerprint = build_rows["expert"][0]["provenance"]["recipe_hash"]
    for fmt, out in exports.items():
        card = (out / "README.md").read_text()
        assert fingerprint in card and f"--format {fmt}" in card and "## Counts" in card, fmt


# -------------------------------------------------------------------------------------------- determinism
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_exporting_twice_gives_the_same_bytes(exports, build_dir, tmp_path):
    for fmt, first in exports.items():
        again = export_build(build_dir, fmt, tmp_path / fmt).out
        assert _tree(again) == _tree(first), fmt


# ----------------------------------------------------------------------------------------- round trip
def test_a_build_from_before_build_json_exports_the_same_pairs(exports, build_dir, tmp_path):
    """Without build.json (an older build) the engine view re-derives the stages from the recipe's inputs."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(build_dir, old)
    (old / "build.json").unlink()
    export_build(old, "trl-dpo", tmp_path / "out")
    again = load_from_disk(str(tmp_path / "out" / "dataset"))["train"].to_list()
    assert again == load_from_disk(str(exports["trl-dpo"] / "dataset"))["train"].to_list()


def test_sharegpt_reimport_gives_the_same_trajectories(exports, build_dir, build_rows):
    from steca_data.core.schemas import Trajectory
    from steca_data.importers.sharegpt import read_sharegpt

    def same(imported, original) -> None:
        assert imported.instruction == original.instruction.strip()
        assert imported.initial_observation == original.initial_observation.strip()
        got = [(s.thought, s.action, s.observation) for s in imported.steps]
        want = [(s.thought.strip(), s.action.strip(), s.observation.strip()) for s in original.steps]
        assert got == want
        assert imported.outcome_reward == original.outcome_reward

    for name, table in (("expert", "trajectories"), ("de", "rollouts")):
        _, good, bad = read_sharegpt(exports["sharegpt"] / f"{name}.json", "textworld_express", "x")
        assert not bad and len(good) == len(build_rows[name])
        data = dict(_sql(build_dir, f"select key, data from {table}"))
        originals = [Trajectory.model_validate_json(data[row["id"]]) for row in build_rows[name]]
        if name == "expert":  # one record per task, its id the task id
            originals.sort(key=lambda t: t.task.task_id)
            assert [t.task.task_id for _, t in good] == [f"textworld_express/{t.task.task_id}" for t in originals]
        for (_, imported), original in zip(good, originals, strict=True):
            same(imported, original)


# ------------------------------------------------------------------------------------------ consumers
@pytest.fixture(scope="module")
def tiny_lm(build_rows):
    """A byte-level BPE tokenizer (chat template with generation markers) and a 1-layer Llama."""
    from steca_data.recipe.agent import ModelSpec
    from steca_data.training.init_model import build_model, train_tokenizer

    texts = [m["content"] for rows in build_rows.values() for r in rows for m in r["messages"]]
    tokenizer = train_tokenizer(texts, 320)
    spec = ModelSpec(
        vocab_size=320, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=4096
    )
    return build_model(spec, tokenizer), tokenizer


def _trainer_args(config_cls, out: Path, **extra):
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}  # transformers 5 renamed gradient_checkpointing
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return config_cls(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=2,
        bf16=False,
        use_cpu=True,
        **{checkpointing: False},
        report_to=[],
        save_strategy="no",
        max_length=4096,
        **extra,
    )


def test_trl_sft_trains_on_exactly_the_loss_turns(exports, tiny_lm, build_rows, tmp_path):
    import math

    from datasets import concatenate_datasets
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = tiny_lm
    dd = load_from_disk(str(exports["trl-sft"] / "dataset"), keep_in_memory=True)
    train = concatenate_datasets([dd[name] for name in ("dc", "de", "ds", "expert")])
    args = _trainer_args(SFTConfig, tmp_path, assistant_only_loss=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    rows = {r["id"]: r for rows in build_rows.values() for r in rows}
    for example in trainer.train_dataset:
        trained = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100]
        want = "".join(f"{content}<|end|>" for content in _loss_turns(rows[example["id"]]))
        assert tokenizer.decode(trained) == want, example["dataset"]
    assert math.isfinite(trainer.train().training_loss)


def test_trl_dpo_trains_one_step(exports, tiny_lm, tmp_path):
    import copy
    import math

    from trl import DPOConfig, DPOTrainer

    model, tokenizer = tiny_lm
    pairs = load_from_disk(str(exports["trl-dpo"] / "dataset"), keep_in_memory=True)["train"]
    args = _trainer_args(DPOConfig, tmp_path)
    trainer = DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=pairs, processing_class=tokenizer
    )
    assert len(trainer.train_dataset) == len(pairs)
    assert math.isfinite(trainer.train().training_loss)


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def cli():
    import typer
    from typer.testing import CliRunner

    from steca_data.cli.export import export_command

    app = typer.Typer()
    app.command("export")(export_command)
    app.command("noop")(lambda: None)  # two commands, so "export" is a subcommand as on steca-data

    def run(*args: str):
        return CliRunner().invoke(app, ["export", *map(str, args)])

    return run


def _error_line(result) -> str:
    text = (result.stderr if hasattr(result, "stderr") else result.output).strip()
    assert len(text.splitlines()) == 1, text
    return text


def test_cli_refuses_bad_input_with_one_line_and_exit_2(cli, build_dir, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    not_a_build = tmp_path / "empty"
    not_a_build.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep me")
    cases = [
        ((build_dir, "--format", "axolotl", "--out", tmp_path / "o1"), "unknown format"),
        ((not_a_build, "--format", "trl-sft", "--out", tmp_path / "o2"), "not a steca-data build"),
        ((tmp_path / "missing", "--format", "trl-sft", "--out", tmp_path / "o3"), "not a directory"),
        ((build_dir, "--format", "trl-sft", "--out", a_file), "not a directory"),
        ((build_dir, "--format", "trl-sft", "--out", full), "was not written by steca-data"),
        ((build_dir, "--format", "trl-sft", "--out", full, "--overwrite"), "was not written by steca-data"),
        ((build_dir, "--format", "trl-sft", "--out", build_dir / "x"), "outside the build"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in _error_line(result), args
    assert a_file.read_text() == "keep me" and (full / "x").read_text() == "keep me"
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))
    assert sorted(p.name for p in build_dir.iterdir()) == [
        "README.md",
        "build.json",
        "cache.duckdb",
        "dataset",
        "parquet",
        "recipe.yaml",
    ]


def test_cli_overwrite_replaces_an_earlier_export_only(cli, build_dir, tmp_path):
    out = tmp_path / "out"
    assert cli(build_dir, "--format", "trl-sft", "--out", out).exit_code == 0
    (out / "stale.txt").write_text("old")
    again = cli(build_dir, "--format", "step", "--out", out)
    assert again.exit_code == 2 and "--overwrite" in _error_line(again)
    result = cli(build_dir, "--format", "step", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and (out / "dataset" / "dataset_dict.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "nothing left beside it"


def test_errors_come_before_any_work(build_dir, tmp_path):
    with pytest.raises(ExportError, match="unknown format"):
        export_build(tmp_path / "nowhere", "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_expert_only_build_exports_what_it_has(tmp_path_factory):
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    recipe = load_recipe(write_recipe(tmp_path_factory.mktemp("expert-only"), name="plain", train=2))
    Builder(recipe, Reporter(quiet=True)).build()
    out = tmp_path_factory.mktemp("expert-only-out")
    with pytest.raises(ExportError, match="builds no dc/de/ds"):
        export_build(recipe.build_dir, "trl-dpo", out / "dpo")
    assert not (out / "dpo").exists()
    result = export_build(recipe.build_dir, "sharegpt", out / "sharegpt")
    assert result.counts == {"expert.json": 2}
    assert export_build(recipe.build_dir, "trl-sft", out / "sft").counts == {"expert": 2}
