"""Bad input is exit 2 with one line before any work; a damaged input file is exit 1 with one line naming the
file (never "out of memory"); commands that fail create no output folder. Each case is a command a user
typed (in-process, under the real entry point), in a folder holding a small build."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from steca_data.cli.failures import explain_failure
from tests.conftest import write_recipe
from tests.hardening.conftest import snapshot

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 1,
         "num_attention_heads": 2, "intermediate_size": 128, "vocab_size": 100}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    root = tmp_path_factory.mktemp("codes")
    Builder(load_recipe(write_recipe(root, name="codes", train=2)), Reporter(quiet=True)).build()
    return root / "build"


@pytest.fixture
def box(cli, built, tmp_path) -> Path:
    """The current folder: b/ (a copy of the build, its recipe pointing at it), a fake model, a garbage one."""
    shutil.copytree(built, tmp_path / "b")
    recipe = yaml.safe_load((tmp_path / "b" / "recipe.yaml").read_text())
    recipe["output"]["dir"] = "b"
    (tmp_path / "b" / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    from safetensors.torch import save_file
    from torch import zeros

    for name, weights in (("model", None), ("garbage", os.urandom(4096)), ("noweights", b"")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(LLAMA))
        if weights:
            (tmp_path / name / "model.safetensors").write_bytes(weights)
        elif weights is None:  # a well-formed (if meaningless) weights file: the checks pass it
            save_file({"w": zeros(2)}, str(tmp_path / name / "model.safetensors"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    save_file({"w": zeros(2)}, str(tmp_path / "adapter" / "adapter_model.safetensors"))
    from steca_data.core.outputs import mark

    (tmp_path / "old" / "checkpoint").mkdir(parents=True)  # a run checkpointed before sharded (DCP) checkpoints
    mark(tmp_path / "old", "model")
    (tmp_path / "old" / "checkpoint" / "state.json").write_text('{"step": 3, "history": []}')
    (tmp_path / "old" / "checkpoint" / "optimizer.pt").write_bytes(b"")
    return tmp_path


def _one_line(result, code: int, *words: str) -> None:
    assert result.code == code, (result.code, result.err)
    assert len(result.err_lines) == 1 and "Traceback" not in result.err, result.err
    for word in words:
        assert word in result.err, result.err


CASES = {
    "sft-missing-model": (["sft", "--recipe", "b/recipe.yaml", "--model", "nowhere"], "not a model directory"),
    "sft-empty-model": (["sft", "--recipe", "b/recipe.yaml", "--model", ""], "not a model directory"),
    "sft-resume-without-checkpoint": (
        ["sft", "--recipe", "b/recipe.yaml", "--model", "model", "--out", "new", "--resume"],
        "no checkpoint",
    ),
    "sft-resume-old-checkpoint": (
        ["sft", "--recipe", "b/recipe.yaml", "--model", "model", "--out", "old", "--resume"],
        "checkpoint of an earlier steca-data",
    ),
    "eval-missing-model": (["eval", "--recipe", "b/recipe.yaml", "--model", "nowhere"], "not a model directory"),
    "eval-empty-model": (["eval", "--recipe", "b/recipe.yaml", "--model", ""], "--model"),
    "reinforce-missing-model": (
        ["reinforce", "--data", "b", "--model", "nowhere", "--method", "rft", "--set", "datasets=[expert,de]"],
        "not a model directory",
    ),
    "reinforce-no-build": (["reinforce", "--data", "model", "--method", "rft"], "not a steca-data build"),
    "merge-not-an-adapter": (["merge", "model", "--out", "merged"], "not a LoRA adapter"),
    "merge-missing": (["merge", "nowhere", "--out", "merged"], "not a LoRA adapter"),
    "merge-unusable-adapter": (["merge", "adapter", "--out", "merged"], "not a usable LoRA adapter"),
    "init-model-no-build": (["init-model", "--recipe", "r.yaml"], "no built dataset"),
}
DATA_CASES = {
    "push-invalid-repo-id": (["push", "b", "not a repo!"], "not a Hub repo id"),
    "push-empty-repo-id": (["push", "b", ""], "empty Hub repo id"),
    "push-three-parts": (["push", "b", "a/b/c"], "not a Hub repo id"),
    "bench-zero-tasks": (["bench", "b/recipe.yaml", "--tasks", "0"], "--tasks"),
    "bench-negative-tasks": (["bench", "b/recipe.yaml", "--tasks", "-1"], "--tasks"),
    "bench-missing-model": (["bench", "b/recipe.yaml", "--model", "nowhere"], "not a model directory"),
    "bench-no-agent": (["bench", "b/recipe.yaml"], "not built yet"),
    "sql-not-utf8": (["sql", "select '\udcff'", "--db", "b/cache.duckdb"], "not UTF-8"),
    "build-invalid-hub-id": (["build", "b/recipe.yaml", "--push-to-hub", "bad id!"], "not a Hub repo id"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_train_input_is_exit_2_before_any_work(cli, box, case):
    args, word = CASES[case]
    write_recipe(box, name="r", train=2, output={"dir": "nobuild"})
    before = snapshot(box)
    _one_line(cli(*args, tool="train"), 2, word)
    assert snapshot(box) == before


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_input_is_exit_2_before_any_work(cli, box, case, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may reach the network either way
    args, word = DATA_CASES[case]
    before = snapshot(box)
    _one_line(cli(*args), 2, word)
    assert snapshot(box) == before


@pytest.mark.parametrize("backend", ["transformers", "vllm"])
def test_garbage_weights_are_named_not_out_of_memory(cli, box, backend):
    result = cli("eval", "--recipe", "b/recipe.yaml", "--model", "garbage", "--set", f"policy.backend={backend}",
                 "--limit", "1", "--no-greedy", "--samples", "1", tool="train")  # fmt: skip
    _one_line(result, 1, "garbage/model.safetensors", "not a safetensors file")
    assert "memory" not in result.err


def test_a_broken_config_json_is_named(cli, box):
    (box / "garbage" / "config.json").write_text('{"model_type": "llama",')
    result = cli("eval", "--recipe", "b/recipe.yaml", "--model", "garbage", tool="train")
    _one_line(result, 1, "garbage/config.json", "not valid JSON")


def test_a_model_folder_without_weights_is_named(cli, box):
    result = cli("eval", "--recipe", "b/recipe.yaml", "--model", "noweights", tool="train")
    _one_line(result, 1, "noweights: holds no weights")


def test_a_garbage_arrow_file_is_named(cli, box):
    (box / "b" / "dataset" / "expert" / "data-00000-of-00001.arrow").write_bytes(os.urandom(2048))
    result = cli("inspect", "b")
    _one_line(result, 1, "b/dataset", "Arrow", "damaged")
    sft = cli("sft", "--recipe", "b/recipe.yaml", "--model", "model", "--out", "sft", tool="train")
    _one_line(sft, 1, "b/dataset", "damaged")
    assert not (box / "sft").exists()


def test_report_and_experiment_create_nothing_before_failing(cli, box):
    (box / "b" / "cache.duckdb").write_bytes(b"not a database" * 200)
    report = cli("report", "b")
    _one_line(report, 1, "damaged")
    assert not (box / "b" / "report").exists()
    recipe = write_recipe(box, name="exp", train=2, output={"dir": "exp"}, experiment={"out": "exp-out"})
    experiment = cli("experiment", recipe.name, tool="train")
    assert experiment.code in (1, 2) and len(experiment.err_lines) == 1, experiment.err
    assert not (box / "exp-out").exists()


def _raised(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the exception a library raises is what is classified
        return exc
    raise AssertionError("no exception")


def test_library_failures_name_the_kind_of_file(tmp_path):
    """The classifier's last resort, on the exceptions the libraries really raise (no wrapper named the file)."""
    import pyarrow as pa
    import safetensors.torch

    garbage = tmp_path / "x.bin"
    garbage.write_bytes(os.urandom(4096))
    weights = _raised(lambda: safetensors.torch.load_file(str(garbage)))
    arrow = _raised(lambda: pa.ipc.open_stream(garbage.read_bytes()))
    decoded = _raised(lambda: json.loads('{"a": '))
    for exc, kind in ((weights, "safetensors"), (arrow, "Arrow"), (decoded, "JSON")):
        line, code = explain_failure(exc)
        assert code == 1 and kind in line and "damaged" in line, line
    oom = MemoryError()
    oom.__context__ = weights  # a reader that trusted a damaged header
    line, _ = explain_failure(oom)
    assert "out of memory" not in line and "safetensors" in line, line
    assert explain_failure(MemoryError())[0].startswith("out of memory")
