"""Checkpoints for exact resume, and the one HF-format save the engines load.

Weights and optimizer state are gathered to full, CPU-resident state dicts with
``torch.distributed.checkpoint.state_dict`` (the same call for one process, DDP and FSDP2), and rank 0 writes
them: the weights with ``save_pretrained`` (so a checkpoint dir is itself a model, or a LoRA adapter, that
transformers, peft and vLLM load), the optimizer keyed by parameter name (so a run may resume under another
world size: the batch order and the gradient do not depend on it). Every rank's RNG state is kept too.
A checkpoint is written to a temp dir and renamed: a kill -9 leaves the previous one whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from steca_data.core.outputs import mark
from steca_data.training.distributed import World


def _full():
    """Full (unsharded), CPU-resident state dicts; imported late: the module costs seconds to import."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_weights(model) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0's CPU (a collective: every rank calls it; others get ``{}``).

    Tied parameters (a shared embedding and output head) come back as separate copies; the aliases are
    dropped, as ``save_pretrained`` drops them from a live model, so the saved files do not depend on the wrapper.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    weights = get_model_state_dict(model, options=_full())
    unique = {name for name, _ in model.named_parameters()}
    aliases = {name for name, _ in model.named_parameters(remove_duplicate=False)} - unique
    return {k: v for k, v in weights.items() if k not in aliases}


def save_model(model, weights: dict | None, tokenizer, path: Path) -> None:
    """HF format: ``config.json`` + safetensors (or ``adapter_config.json`` + adapter) and the tokenizer,
    written beside and each file renamed into ``path`` (a kill mid-save leaves no half-written file), and
    ``path`` marked as steca-data's (``core.outputs``: a later run may write there again, nothing else).
    ``weights`` None: the model's own state (a merged adapter)."""
    path.mkdir(parents=True, exist_ok=True)
    mark(path, "model")
    staging = path / ".saving"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), state_dict=weights)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(staging))
    for item in sorted(staging.iterdir()):
        if item.is_dir():
            shutil.rmtree(path / item.name, ignore_errors=True)
        item.replace(path / item.name)
    staging.rmdir()


def save(model, optim, weights: dict, state: dict, path: Path, world: World) -> None:
    """Weights (or adapter), optimizer, every rank's RNG and the loop's ``state`` (step, tokens, history);
    ``weights`` from ``full_weights``."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    optim_state = get_optimizer_state_dict(model, optim, options=_full())
    rngs = world.gather(torch.get_rng_state())
    if world.main:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(model, weights, None, tmp)
        torch.save(optim_state, tmp / "optimizer.pt")
        torch.save(rngs, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({**state, "world_size": world.size}))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        mark(path.parent, "model")  # a crashed run's folder is ours: --resume may write there again
    world.barrier()  # no rank runs ahead (or reads the dir) before it is whole


def read_state(path: Path, resume: bool) -> dict | None:
    """The checkpoint's step and history, or None for a fresh run; ``--resume`` without one is an error."""
    state = json.loads((path / "state.json").read_text()) if resume and (path / "state.json").is_file() else None
    if resume and state is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {path}")
    return state


def load_optimizer_and_rng(model, optim, path: Path, world: World) -> None:
    """Optimizer state (sharded onto this rank under FSDP) and this rank's RNG, as they were when saved."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    state = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    if isinstance(state["param_groups"][0]["params"][0], int):  # a checkpoint from before name-keyed state
        optim.load_state_dict(state)
    else:
        set_optimizer_state_dict(model, optim, state, options=StateDictOptions(full_state_dict=True))
    rngs = torch.load(path / "rng.pt", weights_only=True)
    rngs = [rngs] if isinstance(rngs, torch.Tensor) else rngs
    torch.set_rng_state(rngs[world.rank] if world.rank < len(rngs) else rngs[0])
