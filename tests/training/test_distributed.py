"""Two processes (torchrun, gloo on CPU) train the same model as one process on the same global batch.

Same loss curve and final weights for SFT and for the weighted objective with per-turn masks (DDP, FSDP2, and
a LoRA adapter under FSDP2 with activation checkpointing);
a rank killed with SIGKILL mid-epoch and ``--resume`` give the uninterrupted run's final weights; the
documented ``torchrun ... steca-train sft`` launch works. Every launch runs several jobs (startup dominates).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from steca_data.recipe.agent import LoRASpec
from steca_data.recipe.reinforce import DPOSpec
from steca_data.training.trainer import train
from steca_train.dpo import train_dpo

WORKER = Path(__file__).with_name("dist_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def launch(jobs: list[dict], path: Path) -> subprocess.CompletedProcess:
    path.write_bytes(pickle.dumps(jobs))
    return torchrun(str(WORKER), str(path))


def weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (out / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(out / name)


def assert_same_run(a: Path, b: Path, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    la, lb = (json.loads((d / "train_log.json").read_text()) for d in (a, b))
    assert [h["loss"] for h in la["history"]] == pytest.approx([h["loss"] for h in lb["history"]], rel=1e-4)
    assert la["tokens"] == lb["tokens"]
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=rtol, atol=atol, msg=name)


@pytest.fixture(scope="module")
def masked_weighted(tiny_rows, tokenizer):
    """Rows with uneven reward weights and the first assistant turn of every other row not learnt."""
    from steca_data.training.data import rows_to_examples

    rows = []
    for i, row in enumerate(tiny_rows[:16]):
        first = next(j for j, m in enumerate(row["messages"]) if m["role"] == "assistant")
        messages = [
            {**m, "loss": m.get("loss", True) and not (i % 2 and j == first)} for j, m in enumerate(row["messages"])
        ]
        rows.append({**row, "messages": messages, "reward_weight": (0.3, 1.0, 1.7)[i % 3]})
    examples, _ = rows_to_examples(rows, tokenizer, 2, 768)
    assert len({e.weight for e in examples}) == 3
    return examples


SFT_SETTINGS = {"warmup_steps": 2, "batch_tokens": 1024, "save_every": 3, "max_steps": 7, "grad_accum": 4}


@pytest.fixture(scope="module")
def runs(tiny_recipe, tiny_recipe_path, init_model_dir, examples, masked_weighted, dpo_pairs, tokenizer,
         tmp_path_factory):  # fmt: skip
    """Two launches: the worker (three jobs, then a fourth whose rank 1 is SIGKILLed mid-epoch), then the
    documented ``torchrun ... steca-train sft --resume`` over the killed run; and the jobs in this process."""
    root = tmp_path_factory.mktemp("dist")
    base = tiny_recipe.sft.model_copy(update=SFT_SETTINGS)
    specs = {
        "sft": base,
        "weighted": base.model_copy(update={"max_steps": 5, "grad_accum": 2, "parallel": "ddp"}),
        "weighted_fsdp": base.model_copy(update={"max_steps": 5, "grad_accum": 2, "parallel": "fsdp"}),
        "lora_fsdp_ckpt": base.model_copy(
            update={
                "max_steps": 4,
                "grad_accum": 2,
                "parallel": "fsdp",
                "lora": LoRASpec(r=4, alpha=8),
                "lr": 2e-2,
                "activation_checkpointing": True,
            }
        ),  # fmt: skip
        "sft_fsdp": base.model_copy(update={"parallel": "fsdp"}),
    }
    data = {"sft": examples, "weighted": masked_weighted, "weighted_fsdp": masked_weighted,
            "lora_fsdp_ckpt": masked_weighted, "sft_fsdp": examples}  # fmt: skip
    pad = tokenizer.pad_token_id
    jobs = [
        {"spec": s.model_dump(), "init": init_model_dir, "examples": data[k], "out": root / "two" / k, "pad_id": pad}
        for k, s in specs.items()
    ]
    crash = {**jobs[-1], "out": root / "crash", "kill_at": 5}  # FSDP2: a sharded checkpoint at step 3
    dpo = {"dpo": DPO_SETTINGS, "init": init_model_dir, "pairs": dpo_pairs, "out": root / "two" / "dpo"}
    killed = launch([*jobs, dpo, crash], root / "jobs.pkl")
    shards = sorted(p.name for p in (root / "crash" / "checkpoint").iterdir())  # as the kill left them
    train_dpo(DPOSpec(**DPO_SETTINGS), init_model_dir, dpo_pairs, root / "one" / "dpo", seed=0, threads=1)
    for k, s in specs.items():
        if k != "sft_fsdp":  # one process: the same run as "sft"
            train(s, init_model_dir, data[k], root / "one" / k, pad_id=pad)
    state = json.loads((root / "crash" / "checkpoint" / "state.json").read_text())
    shutil.copytree(root / "crash" / "checkpoint", root / "crash_one" / "checkpoint")
    train(base, init_model_dir, examples, root / "crash_one", resume=True, pad_id=pad)  # 2 shards -> one process
    shutil.copytree(root / "two" / "weighted" / "checkpoint", root / "ddp_one" / "checkpoint")  # DDP's, final
    train(specs["weighted"], init_model_dir, masked_weighted, root / "ddp_one", resume=True, pad_id=pad)
    sets = [arg for key, value in SFT_SETTINGS.items() for arg in ("--set", f"sft.{key}={value}")]
    script = Path(sys.executable).with_name("steca-train")
    resumed = torchrun(str(script), "sft", "--recipe", str(tiny_recipe_path), "--model", str(init_model_dir),
                       "--out", str(root / "crash"), "--resume", "--quiet", *sets,
                       "--set", "sft.parallel=fsdp")  # fmt: skip
    return root, killed, state, resumed, shards


DPO_SETTINGS = {"batch_size": 4, "max_steps": 3, "max_turns": 2, "max_length": 768}


@pytest.fixture(scope="module")
def dpo_pairs(tiny_rows) -> list[dict]:
    """12 conversational preference pairs (the trl-dpo export's shape): a task's expert continuation chosen,
    the next task's rejected; short enough that none is truncated away (3 whole batches of 4)."""
    from steca_train.dpo import trainer_pairs

    def strip(messages):
        return [{"role": m["role"], "content": m["content"]} for m in messages]

    rows = []
    for a, b in zip(tiny_rows[0:40:2], tiny_rows[1:40:2], strict=True):
        k = next(j for j, m in enumerate(a["messages"]) if m["role"] == "assistant")
        rows.append({"prompt": strip(a["messages"][:k]), "chosen": strip(a["messages"][k:]),
                     "rejected": strip(b["messages"][k:])})  # fmt: skip
    return trainer_pairs(rows, 2, 2)[:12]


@pytest.mark.parametrize("job", ["sft", "weighted", "weighted_fsdp", "lora_fsdp_ckpt", "sft_fsdp"])
def test_two_processes_equal_one(runs, job):
    root = runs[0]
    two = json.loads((root / "two" / job / "train_log.json").read_text())
    assert two["processes"] == 2 and two["parallel"] == ("fsdp" if "fsdp" in job else "ddp")
    assert two["activation_checkpointing"] == job.endswith("ckpt") and two["lora"] == job.startswith("lora")
    assert_same_run(root / "one" / job.replace("sft_fsdp", "sft"), root / "two" / job)
    assert not (root / "two" / job / "checkpoint.tmp").exists()


def test_kill_9_and_resume_with_torchrun_steca_train(runs):
    """FSDP2, rank 1 killed at step 5 (a sharded checkpoint at 3: each rank wrote its half); ``torchrun ...
    steca-train sft --resume`` ends where the uninterrupted run did; one process resumes the same checkpoint
    (DCP reshards 2 -> 1), and a DDP checkpoint too; rank 0 alone reports; the model loads with its KV cache on."""
    root, killed, state, resumed, shards = runs
    assert killed.returncode != 0 and state["step"] == 3 and state["world_size"] == 2
    # each rank wrote its shards (weights and AdamW state) and its RNG; no whole-model file
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp", "rng-0.pt", "rng-1.pt", "state.json"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("trained 7 steps") == 1, resumed.stderr[-3000:]
    assert_same_run(root / "two" / "sft_fsdp", root / "crash", rtol=1e-6, atol=1e-7)
    assert_same_run(root / "two" / "sft_fsdp", root / "crash_one")  # a checkpoint of 2 ranks resumes in 1 process
    assert_same_run(root / "two" / "weighted", root / "ddp_one", rtol=0, atol=0)  # DDP's checkpoint: its weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert AutoModelForCausalLM.from_pretrained(str(root / "crash")).config.use_cache
    assert AutoTokenizer.from_pretrained(str(root / "crash")).pad_token_id is not None


def test_dpo_under_torchrun_equals_one_process(runs):
    """TRL's DPOTrainer (steca-dpo, IPR and ETO's trainer) on 2 processes (accelerate's DDP on gloo, dpo.batch_size
    the global batch) takes the one-process steps: same losses and reward margins, same weights."""
    root = runs[0]
    one, two = (json.loads((root / d / "dpo" / "train_log.json").read_text()) for d in ("one", "two"))
    assert (one["processes"], two["processes"], one["steps"], two["steps"]) == (1, 2, 3, 3)
    for a, b in zip(one["history"], two["history"], strict=True):
        assert (a["loss"], a["reward_margin"]) == pytest.approx((b["loss"], b["reward_margin"]), rel=1e-4, abs=1e-5)
    assert two["history"][-1]["reward_margin"] > 0  # it learnt to prefer the chosen side
    wa, wb = weights(root / "one" / "dpo"), weights(root / "two" / "dpo")
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-5, msg=name)
