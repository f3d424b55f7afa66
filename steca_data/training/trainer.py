"""The training loop: reward-weighted NLL on assistant turns, nanoGPT-sized so it fits in one's head.

    loss = sum_i w_i * sum_t m_it * nll_it  /  sum_i sum_t m_it        (over one optimizer step)

``m`` is 1 on the tokens of assistant turns that bear loss (per-turn masks come from the rows'
``loss`` flags), ``w_i`` is the row's ``reward_weight``. Normalising by the number of loss tokens (not by
the weights) keeps the weights meaningful: doubling a row's weight doubles its pull. The same loop runs
warm-up SFT (all weights 1) and STeCa's reinforced objective (weights r_c, r_s, r_e).

Under ``torchrun`` the same loop runs on N processes (``distributed``: DDP or FSDP2): a step's micro-batches
are dealt to the ranks round-robin and the normaliser counts the loss tokens of the whole step (all-reduced),
so a step's gradient is the one a single process computes on the same micro-batches. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from steca_data.recipe.agent import SFTSpec
from steca_data.training import checkpoint
from steca_data.training.data import Example, collate, make_batches
from steca_data.training.distributed import World, grad_sync, setup, strategy, wrap

CHECKPOINT_DIR = "checkpoint"
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


def weighted_nll(
    logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor, weights: torch.Tensor, normalizer: float
) -> torch.Tensor:
    """Sum of per-token NLL of next-token targets, times mask and per-example weight, over ``normalizer``."""
    targets = input_ids[:, 1:]
    mask = loss_mask[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, reduction="none")
    return (nll * mask * weights[:, None]).sum() / normalizer


def lr_at(step: int, total: int, spec: SFTSpec) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr``."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    progress = min(1.0, (step - spec.warmup_steps) / max(1, total - spec.warmup_steps))
    floor = spec.lr * spec.min_lr_ratio
    return floor + 0.5 * (spec.lr - floor) * (1 + math.cos(math.pi * progress))


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def use_bf16(choice: str, device: torch.device) -> bool:
    """bf16 only where the hardware has it (CUDA with bf16); CPU trains in fp32."""
    if choice == "off" or device.type != "cuda":
        return False
    return torch.cuda.is_bf16_supported()


@dataclass
class TrainResult:
    steps: int
    tokens: int
    seconds: float
    final_loss: float
    out: Path
    stopped_early: bool = False
    planned_steps: int = 0
    history: list[dict] = field(default_factory=list)


def load_for_training(init: str | Path, spec: SFTSpec, device: torch.device):
    """The model to train: full weights, or the base wrapped with a fresh LoRA adapter (seeded by the caller)."""
    from transformers import AutoModelForCausalLM

    if spec.lora is None:
        return AutoModelForCausalLM.from_pretrained(str(init), dtype=torch.float32).to(device)
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(str(Path(init).resolve()), dtype=torch.float32)
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=spec.lora.r,
        lora_alpha=spec.lora.alpha,
        lora_dropout=spec.lora.dropout,
        target_modules=list(spec.lora.target_modules),
    )
    return get_peft_model(base, config).to(device)


def total_steps(spec: SFTSpec, batches_per_epoch: int) -> int:
    if spec.max_steps:
        return spec.max_steps
    return max(1, math.ceil(spec.epochs * batches_per_epoch / spec.grad_accum))


def plan_steps(spec: SFTSpec, examples: list[Example]) -> int:
    """Optimizer steps a run on ``examples`` will take (for progress bars and schedules)."""
    return total_steps(spec, len(make_batches(examples, spec.batch_tokens, spec.seed)))


class TimeBudgetExceeded(RuntimeError):
    """Training ran past ``time_budget_s`` where stopping early would silently change a cached result."""


def make_optimizer(model, spec: SFTSpec, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms and biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": spec.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


class MicroBatches:
    """The m-th micro-batch of a run: epochs reshuffle with seed + epoch, so a resumed run replays exactly."""

    def __init__(self, examples: list[Example], spec: SFTSpec):
        self.examples, self.spec = examples, spec
        self._epochs = {0: make_batches(examples, spec.batch_tokens, spec.seed)}
        self.per_epoch = len(self._epochs[0])

    def __call__(self, m: int) -> list[Example]:
        epoch = m // self.per_epoch
        if epoch not in self._epochs:
            self._epochs[epoch] = make_batches(self.examples, self.spec.batch_tokens, self.spec.seed + epoch)
        return [self.examples[j] for j in self._epochs[epoch][m % self.per_epoch]]


@dataclass
class Engine:
    """What a step runs on: the module to call (``net``: the model or its DDP wrapper) and how."""

    model: torch.nn.Module  # the model itself (FSDP2 shards it in place), for state dicts and saving
    net: torch.nn.Module
    parallel: str  # none | ddp | fsdp
    world: World
    device: torch.device
    bf16: bool


def optimizer_step(eng: Engine, optim, micro: list[list[Example]], spec: SFTSpec, pad_id: int):
    """One optimizer step over the step's micro-batches (this rank's share); returns (loss, tokens), global.

    Each rank takes micro-batches rank, rank + N, ...; the loss is normalised by the loss tokens of all of
    them (all-reduced) and scaled by N because DDP and FSDP average gradients over ranks: the reduced gradient
    is then exactly the single-process one.
    """
    world = eng.world
    mine = micro[world.rank :: world.size]
    (normalizer,) = world.sum([float(sum(sum(e.loss_mask[1:]) for mb in mine for e in mb))])
    normalizer = normalizer or 1.0
    loss_sum, tokens = 0.0, 0
    for i, batch in enumerate(mine):
        ids, attn, mask, weights = (t.to(eng.device) for t in collate(batch, pad_id))
        with grad_sync(eng.net, eng.parallel, sync=i == len(mine) - 1):
            with torch.autocast(eng.device.type, dtype=torch.bfloat16, enabled=eng.bf16):
                logits = eng.net(input_ids=ids, attention_mask=attn).logits
            loss = weighted_nll(logits, ids, mask, weights, normalizer)
            (loss * world.size).backward()
        loss_sum += loss.item()
        tokens += int(attn.sum())
    if spec.grad_clip:
        torch.nn.utils.clip_grad_norm_([p for p in eng.model.parameters() if p.requires_grad], spec.grad_clip)
    optim.step()
    optim.zero_grad(set_to_none=True)
    loss_sum, tokens = world.sum([loss_sum, float(tokens)])
    return loss_sum, int(tokens)


def prepare(spec: SFTSpec, init: str | Path) -> Engine:
    """Join the world, load ``init``, checkpoint its activations if asked, and wrap it (a resumed run's
    weights are loaded into the wrapped model: ``checkpoint.load``)."""
    world, device = setup(spec.device)
    if spec.grad_accum % world.size:
        raise ValueError(
            f"grad_accum ({spec.grad_accum}) must be a multiple of the number of processes ({world.size}): "
            f"a step's micro-batches are dealt to the ranks evenly (e.g. --set sft.grad_accum={world.size})"
        )
    torch.manual_seed(spec.seed)  # the same on every rank: LoRA's initial adapter must be identical
    model = load_for_training(init, spec, device)
    model.config.use_cache = False
    if spec.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    how = strategy(spec.parallel, model, world, spec.lora is not None)
    return Engine(model, wrap(model, how, device), how, world, device, use_bf16(spec.bf16, device))


def train(
    spec: SFTSpec,
    init: str | Path,
    examples: list[Example],
    out: Path,
    tokenizer=None,
    resume: bool = False,
    progress=None,
    pad_id: int = 0,
    over_budget: str = "stop",
) -> TrainResult:
    """Train on ``examples`` from model ``init``; writes the model (or adapter) and logs to ``out``.

    The schedule depends only on the spec and the data (never on wall time nor the number of processes), so
    the same inputs train the same steps on any machine. ``time_budget_s`` is a guard: past it,
    ``over_budget="stop"`` ends the run (reported as stopped early) and ``"fail"`` raises
    ``TimeBudgetExceeded`` (for cached units, whose result must not depend on the machine's speed). A
    checkpoint is written every ``save_every`` steps to ``out/checkpoint``; ``resume=True`` continues from it
    with the exact same batch order (under any number of processes).
    """
    if spec.threads:
        torch.set_num_threads(spec.threads)
    ckpt = out / CHECKPOINT_DIR
    found, lora = checkpoint.read_state(ckpt, resume), spec.lora is not None
    eng = prepare(spec, init)
    optim = make_optimizer(eng.model, spec, eng.device)
    step, tokens, history, window = 0, 0, [], []  # window: losses since the last logged mean
    if found:
        (state, from_dir) = found
        checkpoint.load(eng.model, optim, from_dir, eng.world, lora)
        step, tokens, history, window = state["step"], state["tokens"], state["history"], state["window"]
    batches = MicroBatches(examples, spec)
    n_steps = total_steps(spec, batches.per_epoch)
    start, stopped, tokens_before = time.monotonic(), False, tokens

    def loop_state() -> dict:
        return {"step": step, "planned_steps": n_steps, "tokens": tokens, "history": history, "window": window}

    eng.net.train()
    last_loss = float("nan")
    while step < n_steps:
        lr = lr_at(step, n_steps, spec)
        for group in optim.param_groups:
            group["lr"] = lr
        micro = [batches(step * spec.grad_accum + k) for k in range(spec.grad_accum)]
        last_loss, seen = optimizer_step(eng, optim, micro, spec, pad_id)
        step, tokens, elapsed = step + 1, tokens + seen, time.monotonic() - start
        window.append(last_loss)
        if step % spec.log_every == 0 or step == n_steps:
            mean = sum(window) / len(window)  # mean over the logging window: one batch's loss is noisy
            tok_s = round((tokens - tokens_before) / max(elapsed, 1e-9), 1)
            history.append(
                {"step": step, "loss": round(mean, 5), "lr": lr, "tokens": tokens, "s": elapsed, "tok_s": tok_s}
            )
            window.clear()
        if progress:
            progress(step, n_steps, last_loss)
        if step % spec.save_every == 0 and step < n_steps:
            checkpoint.save(eng.model, optim, loop_state(), ckpt, eng.world, lora)
        if spec.time_budget_s and step < n_steps and _over_budget(elapsed, spec, eng.world):
            if over_budget == "fail":
                raise TimeBudgetExceeded(
                    f"training passed sft.time_budget_s ({spec.time_budget_s:g} s) at step {step} of {n_steps}; "
                    "raise the budget or lower sft.epochs / sft.max_steps"
                )
            stopped = True
            break
    seconds = time.monotonic() - start
    eng.model.config.use_cache = True  # off for training only; inference wants the KV cache
    checkpoint.save(eng.model, optim, loop_state(), ckpt, eng.world, lora)  # sharded: a later --resume goes on
    weights = checkpoint.full_weights(eng.model)  # the one gather of the whole model, to rank 0's CPU
    if eng.world.main:
        checkpoint.save_model(eng.model, weights, tokenizer, out)
    del weights
    result = TrainResult(step, tokens, seconds, last_loss, out, stopped, n_steps, history)
    if eng.world.main:
        write_train_log(result, spec, len(examples), eng, _n_params(eng.model), tokens - tokens_before)
    eng.world.barrier()  # the next stage (on any rank) reads what rank 0 wrote
    return result


def _over_budget(elapsed: float, spec: SFTSpec, world: World) -> bool:
    """Rank 0's clock decides for all ranks (they must stop at the same step)."""
    (over,) = world.sum([float(elapsed > spec.time_budget_s) if world.main else 0.0])
    return over > 0


def _n_params(model) -> int:
    """Parameters of the whole model (sharded ones counted whole)."""
    return sum(p.numel() for p in model.parameters())


def mfu(tokens_per_s: float, n_params: int, device: torch.device, world_size: int) -> float | None:
    """Model FLOPs utilisation: 6 N FLOPs per trained token over the GPUs' peak dense bf16 (None off CUDA)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    return round(6 * n_params * tokens_per_s / (peak * world_size), 4) if peak else None


def write_train_log(
    result: TrainResult, spec: SFTSpec, n_examples: int, eng: Engine, n_params: int, timed_tokens: int
) -> None:
    """``train_log.json`` and the loss plot; throughput over the tokens of this launch (``timed_tokens``)."""
    tokens_per_s = timed_tokens / max(result.seconds, 1e-9)
    log = {
        "steps": result.steps,
        "planned_steps": result.planned_steps,
        "examples": n_examples,
        "tokens": result.tokens,
        "seconds": round(result.seconds, 2),
        "tokens_per_s": round(tokens_per_s, 1),
        "mfu": mfu(tokens_per_s, n_params, eng.device, eng.world.size),
        "params": n_params,
        "final_loss": result.final_loss,
        "stopped_early": result.stopped_early,
        "lora": spec.lora is not None,
        "device": eng.device.type,
        "bf16": eng.bf16,
        "processes": eng.world.size,
        "parallel": eng.parallel,
        "activation_checkpointing": spec.activation_checkpointing,
        "threads": torch.get_num_threads(),
        "history": result.history,
    }
    (result.out / "train_log.json").write_text(json.dumps(log, indent=1))
    plot_loss(result.history, result.out / "loss.png")


def plot_loss(history: list[dict], path: Path) -> None:
    """Loss curve next to the model; skipped quietly when matplotlib is unavailable."""
    if not history:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("weighted NLL")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def merge_lora(adapter_dir: Path, out: Path) -> Path:
    """Fold a LoRA adapter into its base model and save a plain checkpoint (what vLLM/eval load fastest)."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir), dtype=torch.float32)
    merged = model.merge_and_unload()
    checkpoint.save_model(merged, None, AutoTokenizer.from_pretrained(str(adapter_dir)), out)
    return out
