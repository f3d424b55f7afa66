"""STeCa with SFT+DPO (the paper's ablation): calibrated vs deviated trajectories as preference pairs.

For each Dc row (deviation at step t) the pair shares the prompt e_{1:t-1} (cut to the prompt's history
window, as at inference) and compares
    chosen   e_c(t:m) = (a'_t, e_{t+1:m})   the reflected step and the expert continuation (from the row)
    rejected e_d(t:m) = (â_t, ê_{t+1:m})    what the agent went on to do (its rollout, from the cache)
each cut to ``dpo.max_turns`` assistant turns. TRL's DPOTrainer does the optimisation; a small collator
change keeps the loss on assistant turns only (the observations inside a multi-turn completion are the
environment's words, not the policy's).
"""

from __future__ import annotations

from pathlib import Path

from steca_data.core.prompts import window_messages
from steca_data.core.react import format_observation, format_turn
from steca_data.core.schemas import ChatMessage, Trajectory
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


def pair_from_row(row: dict, deviated: Trajectory, history: int | None, max_turns: int) -> dict | None:
    """One preference pair from a Dc row and the trajectory of its deviated continuation."""
    t = row["provenance"]["step"]
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if t is None or len(assistant) <= t or len(deviated.steps) < t:
        return None
    prompt = window_messages([ChatMessage(**m) for m in messages[: assistant[t - 1]]], history)
    chosen = _cut(messages[assistant[t] :], max_turns)
    rejected = []
    tail = deviated.steps[t - 1 :]
    for i, step in enumerate(tail):
        rejected.append({"role": "assistant", "content": format_turn(step.thought, step.action)})
        if i < len(tail) - 1:
            rejected.append({"role": "user", "content": format_observation(step.observation)})
    rejected = _cut(rejected, max_turns)
    if not chosen or not rejected or chosen == rejected:
        return None
    return {"prompt": [{"role": m.role, "content": m.content} for m in prompt], "chosen": chosen, "rejected": rejected}


def preference_pairs(dc_rows: list[dict], cache_path: Path, history: int | None, max_turns: int) -> list[dict]:
    """Pairs for every Dc row whose deviated rollout is in the build's cache (``provenance.rollout_ids[0]``)."""
    from steca_data.cache.store import Cache

    ids = [row["provenance"]["rollout_ids"][0] for row in dc_rows if row["provenance"]["rollout_ids"]]
    with Cache(cache_path, read_only=True) as cache:
        found = dict(cache.sql("SELECT key, data FROM rollouts WHERE key IN (SELECT unnest(?))", [ids]).fetchall())
    pairs = []
    for row in dc_rows:
        rid = (row["provenance"]["rollout_ids"] or [None])[0]
        if rid in found:
            pair = pair_from_row(row, Trajectory.model_validate_json(found[rid]), history, max_turns)
            if pair is not None:
                pairs.append(pair)
    return pairs


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


def train_dpo(spec: DPOSpec, init: Path, pairs: list[dict], out: Path, seed: int = 0, threads: int | None = 1) -> dict:
    """Run DPO from ``init`` on ``pairs`` (CPU: fp32, no gradient checkpointing); saves model + a log."""
    import json
    import time

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise ValueError("no preference pairs: the build has no Dc rows with a stored deviated rollout")
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(init))
    model = AutoModelForCausalLM.from_pretrained(str(init), dtype=torch.float32)
    work = out / ".trl-work"  # inside the output (ours), never a sibling that might be the user's
    config = DPOConfig(
        output_dir=str(work),
        beta=spec.beta,
        loss_type=[spec.loss_type],
        learning_rate=spec.lr,
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        max_length=spec.max_length,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=model,
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
    out.mkdir(parents=True, exist_ok=True)
    from steca_data.core.outputs import mark

    mark(out, "model")
    trainer.model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    history = [
        {"step": h["step"], "loss": h["loss"], "reward_margin": h.get("rewards/margins")}
        for h in trainer.state.log_history
        if "loss" in h
    ]
    log = {"pairs": len(pairs), "steps": trainer.state.global_step, "seconds": round(seconds, 2), "history": history}
    (out / "train_log.json").write_text(json.dumps(log, indent=1))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return log
