"""The DPO trainer of ``steca-train``'s preference methods (steca-dpo, IPR, ETO), on TRL's DPOTrainer.

The pairs are rows of ``steca-data export --format trl-dpo`` (``export.trl_dpo.pair_rows``): conversational
``prompt`` / ``chosen`` / ``rejected``. Training shapes them as inference sees a prompt: the prompt cut to the
recipe's history window (``prompt.history``), each side to ``dpo.max_turns`` assistant turns (the length bound).
A small collator change keeps the loss on assistant turns only (the observations inside a multi-turn
completion are the environment's words, not the policy's).
"""

from __future__ import annotations

from pathlib import Path

from steca_data.core.prompts import window_messages
from steca_data.core.schemas import ChatMessage
from steca_data.recipe.reinforce import DPOSpec


def _cut(messages: list[dict], max_turns: int) -> list[dict]:
    """The first ``max_turns`` assistant turns and the observations between them (ends on an assistant turn)."""
    out, turns = [], 0
    for m in messages:
        if m["role"] == "assistant":
            turns += 1
            if turns > max_turns:
                break
        out.append(m)
    while out and out[-1]["role"] != "assistant":
        out.pop()
    return out


def trainer_pair(row: dict, history: int | None, max_turns: int) -> dict | None:
    """One export row as the trainer takes it (None when its two sides are the same once cut)."""
    prompt = window_messages([ChatMessage(role=m["role"], content=m["content"]) for m in row["prompt"]], history)
    chosen, rejected = _cut(row["chosen"], max_turns), _cut(row["rejected"], max_turns)
    if not chosen or not rejected or chosen == rejected:
        return None
    return {"prompt": [{"role": m.role, "content": m.content} for m in prompt], "chosen": chosen, "rejected": rejected}


def trainer_pairs(rows: list[dict], history: int | None, max_turns: int) -> list[dict]:
    """Every export row the trainer can use, in the export's order."""
    return [p for p in (trainer_pair(r, history, max_turns) for r in rows) if p is not None]


def assistant_only_collator(tokenizer):
    """TRL's preference collator with the loss taken off user turns inside the completions."""
    import torch
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    user = tokenizer.convert_tokens_to_ids("<|user|>")
    assistant = tokenizer.convert_tokens_to_ids("<|assistant|>")
    end = tokenizer.eos_token_id

    class Collator(DataCollatorForPreference):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            ids, mask = out["input_ids"], out["completion_mask"]
            for i in range(ids.shape[0]):
                in_user = False
                for j in range(ids.shape[1]):
                    if not mask[i, j]:
                        continue
                    tok = int(ids[i, j])
                    if tok == user:
                        in_user = True
                    if in_user or tok == assistant:
                        mask[i, j] = 0
                    if in_user and tok == end:
                        in_user = False
            out["completion_mask"] = mask.to(torch.long)
            return out

    return Collator(pad_token_id=tokenizer.pad_token_id)


def train_dpo(
    spec: DPOSpec,
    init: Path,
    pairs: list[dict],
    out: Path,
    seed: int = 0,
    threads: int | None = 1,
    losses: list[str] | None = None,
    ref: Path | None = None,
) -> dict:
    """Run DPO from ``init`` on ``pairs`` (CPU: fp32, no gradient checkpointing); saves model + a log.

    Under ``torchrun`` the same run is data-parallel (accelerate's DDP inside TRL; gloo on CPU): ``dpo.batch_size``
    stays the global batch (each rank takes its share), so a step is the one-process step. Rank 0 writes.

    ``losses`` replaces ``[dpo.loss_type]`` (IPR: ``["sigmoid", "sft"]``, DPO plus NLL of the chosen side);
    ``ref`` is the reference model (default: ``init`` itself, TRL's copy)."""
    import time

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    if not pairs:
        raise ValueError("no preference pairs: the build has none of this method's kind (see `steca-data export`)")
    from steca_data.training.distributed import launched_processes

    world = launched_processes()
    if spec.batch_size % world:
        raise ValueError(dpo_batch_problem(spec.batch_size, world))
    batch = global_batch(spec.batch_size, len(pairs), world)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(init))
    model = AutoModelForCausalLM.from_pretrained(str(init), dtype=torch.float32)
    work = out / ".trl-work"  # inside the output (ours), never a sibling that might be the user's
    config = dpo_config(spec, work, batch // world, world, seed, losses)
    ref_model = None if ref is None else AutoModelForCausalLM.from_pretrained(str(ref), dtype=torch.float32)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        data_collator=assistant_only_collator(tokenizer),
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our train_log.json keeps the history; no dicts on stdout
    start = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - start
    history = [
        {"step": h["step"], "loss": h["loss"], "reward_margin": h.get("rewards/margins")}
        for h in trainer.state.log_history
        if "loss" in h
    ]  # under torchrun the logged loss and margins are already means over the ranks
    log = {"pairs": len(pairs), "steps": trainer.state.global_step, "seconds": round(seconds, 2), "history": history,
           "processes": world}  # fmt: skip
    if trainer.is_world_process_zero():  # only rank 0 writes
        _save(trainer, tokenizer, log, out, work)
    trainer.accelerator.wait_for_everyone()  # the next round (on any rank) reads what rank 0 wrote
    return log


def dpo_config(spec: DPOSpec, work: Path, per_rank: int, world: int, seed: int, losses: list[str] | None):
    """TRL's settings of one run: fp32, one log line a step, nothing saved by TRL (``_save`` writes)."""
    import torch
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(work),
        beta=spec.beta,
        loss_type=list(losses or [spec.loss_type]),
        learning_rate=spec.lr,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps or -1,
        per_device_train_batch_size=per_rank,  # dpo.batch_size is the global batch
        dataloader_drop_last=True,  # a partial last batch: accelerate would fill it from the epoch's start
        max_length=spec.max_length,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend="gloo" if world > 1 and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _save(trainer, tokenizer, log: dict, out: Path, work: Path) -> None:
    """The model (HF format), tokenizer and ``train_log.json`` into ``out``, marked ours; TRL's work dir gone."""
    import json
    import shutil

    from steca_data.core.outputs import mark

    out.mkdir(parents=True, exist_ok=True)
    mark(out, "model")
    trainer.model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    shutil.rmtree(work, ignore_errors=True)


def global_batch(batch_size: int, n_pairs: int, world: int) -> int:
    """Pairs per optimizer step: ``dpo.batch_size``, or all the pairs when there are fewer (rounded down to the
    number of processes). Every batch is whole (the partial last one of an epoch is left out), so a step's pairs
    are the same under any number of processes: under torchrun accelerate would fill a partial batch with pairs
    from the epoch's start."""
    return max(world, min(batch_size, n_pairs - n_pairs % world))


def dpo_batch_problem(batch_size: int, world: int) -> str:
    return (
        f"reinforce.dpo.batch_size ({batch_size}) must be a multiple of the number of processes ({world}): it is "
        f"the global batch, dealt evenly to the ranks (e.g. --set reinforce.dpo.batch_size={world * 2})"
    )
