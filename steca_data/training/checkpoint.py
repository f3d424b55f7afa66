"""Sharded checkpoints for exact resume, and the one HF-format save the engines load.

A checkpoint is ``torch.distributed.checkpoint`` (DCP): every rank writes its own shards of the weights and
the AdamW state (``get_state_dict``: DTensor shards under FSDP2; under DDP or one process the replicated
tensors are written once), so no rank ever holds the whole model and optimizer in memory. A LoRA run keeps
only the trainable (adapter) weights: the frozen base is the ``init`` model it restarts from. Each rank also
writes its RNG state; rank 0 writes the loop's ``state.json`` (step, tokens, history: the data position, since
the batch order depends only on the step). DCP reshards on load, so a checkpoint resumes under any world size.

A checkpoint is written to ``<dir>.tmp`` and swapped in when whole (``state.json`` last): a kill -9 at any
moment leaves a whole one (``find``). The final model is still gathered once, at the end, to rank 0's CPU
(``full_weights``) and written by ``save_model`` in HF format for vLLM and transformers.
"""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from steca_data.core.outputs import mark
from steca_data.training.distributed import World

STATE = "state.json"  # written last: a checkpoint dir holding it is whole


def _full():
    """Full (unsharded), CPU-resident state dicts; imported late: the module costs seconds to import."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _sharded(lora: bool):
    """This rank's shards; a LoRA run leaves out the frozen base (its ``init`` model holds it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=lora, strict=not lora)


def _state(model, optim, lora: bool) -> tuple[dict, dict]:
    """This rank's shards of the weights and optimizer state. LoRA: the trainable weights alone (a tied output
    head is frozen too, but ``ignore_frozen_params`` knows it only by its embedding's name)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, optim_state = get_state_dict(model, optim, options=_sharded(lora))
    if lora:
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        weights = {k: v for k, v in weights.items() if k in trainable}
    return weights, optim_state


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


def _siblings(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")


@contextmanager
def _one_process_quietly():
    """DCP warns that it 'assumes the intent is to save in a single process' without a process group: in a
    one-process run that is exactly the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def save(model, optim, state: dict, path: Path, world: World, lora: bool) -> None:
    """Every rank writes its shards of the weights (or adapter) and optimizer and its RNG; rank 0 the loop's
    ``state`` (step, tokens, history) and swaps the new checkpoint in. A collective: every rank calls it."""
    import torch.distributed.checkpoint as dcp

    tmp, old = _siblings(path)
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    world.barrier()
    weights, optim_state = _state(model, optim, lora)
    with _one_process_quietly():
        dcp.save({"model": weights, "optim": optim_state}, checkpoint_id=str(tmp), no_dist=world.size == 1)
    torch.save(torch.get_rng_state(), tmp / f"rng-{world.rank}.pt")
    world.barrier()  # every rank's files are in
    if world.main:
        (tmp / STATE).write_text(json.dumps({**state, "world_size": world.size, "format": "dcp"}))
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
        mark(path.parent, "model")  # a crashed run's folder is ours: --resume may write there again
    world.barrier()  # no rank runs ahead (or reads the dir) before it is whole


def find(path: Path) -> Path | None:
    """The newest whole checkpoint: ``path``, or (killed while swapping it in) its ``.tmp`` or ``.old``."""
    return next((p for p in (path, *_siblings(path)) if (p / STATE).is_file()), None)


def read_state(path: Path, resume: bool) -> tuple[dict, Path] | None:
    """The checkpoint's loop state and its dir, or None for a fresh run; ``--resume`` without one is an error."""
    found = find(path) if resume else None
    if resume and found is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {path}")
    if found and not (found / ".metadata").is_file():
        raise FileNotFoundError(
            f"--resume: {found} is a checkpoint of an earlier steca-data (whole weights + optimizer.pt, before "
            "sharded checkpoints); finish that run with the version that wrote it, or start again without --resume"
        )
    return (json.loads((found / STATE).read_text()), found) if found else None


def load(model, optim, path: Path, world: World, lora: bool) -> None:
    """Weights, optimizer state (resharded onto this world) and this rank's RNG, as they were when saved.
    ``model`` is the wrapped (FSDP2 / DDP'd) model, ``optim`` its fresh optimizer. A collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    weights, optim_state = _state(model, optim, lora)
    with _one_process_quietly():
        dcp.load({"model": weights, "optim": optim_state}, checkpoint_id=str(path), no_dist=world.size == 1)
    set_state_dict(model, optim, model_state_dict=weights, optim_state_dict=optim_state, options=_sharded(lora))
    rng = path / f"rng-{world.rank}.pt"  # more ranks now than when saved: the new ones take rank 0's
    torch.set_rng_state(torch.load(rng if rng.is_file() else path / "rng-0.pt", weights_only=True))
