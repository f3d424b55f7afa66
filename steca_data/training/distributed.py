"""torch.distributed for the trainer: who this process is, how the model is wrapped, and the few reductions.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a plain ``python`` run is a
world of one and touches no process group. Backends: NCCL on CUDA, gloo on CPU (the tests). Wrappers: DDP
(weights replicated, gradients all-reduced) or FSDP2 ``fully_shard`` (weights, gradients and optimizer state
sharded per decoder layer). Both average gradients over ranks; the trainer scales its loss by the world size so
the step's gradient is the sum the single-process objective defines (see ``trainer.optimizer_step``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

FSDP_AUTO_PARAMS = 1_000_000_000  # parallel: auto shards full fine-tuning above this many parameters


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (fp64, so token counts stay exact)."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (on every rank)."""
        if self.size == 1:
            return [obj]
        out = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def launched_processes() -> int:
    """How many processes this launch has (``torchrun`` sets ``WORLD_SIZE``); 1 without a launcher. Safe before
    ``setup``: the command line checks settings against it before any work."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or no launcher): the process that prints, logs and writes. Safe before ``setup``."""
    return int(os.environ.get("RANK", "0")) == 0


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def setup(device_choice: str) -> tuple[World, torch.device]:
    """This process's place in the world and its device; joins the process group once under torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", local if size > 1 else torch.cuda.current_device()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return World(rank, size, local), device


def strategy(choice: str, model, world: World, lora: bool) -> str:
    """none (one process), ddp or fsdp; ``auto`` shards full fine-tuning of big models, replicates the rest."""
    if world.size == 1:
        return "none"
    if choice != "auto":
        return choice
    big = sum(p.numel() for p in model.parameters()) > FSDP_AUTO_PARAMS
    return "fsdp" if big and not lora else "ddp"


def _decoder_layers(model) -> list[torch.nn.Module]:
    """The repeated transformer blocks: FSDP2's unit of sharding (one all-gather per layer)."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def wrap(model, how: str, device: torch.device):
    """The module the loop calls: ``model`` itself (none, fsdp: sharded in place) or its DDP wrapper."""
    if how == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if how == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in _decoder_layers(model):
            fully_shard(layer)
        fully_shard(model)
    return model


def grad_sync(net, how: str, sync: bool):
    """Skip the gradient reduction on all but a rank's last micro-batch of a step (accumulate locally)."""
    if how == "ddp" and not sync:
        return net.no_sync()
    if how == "fsdp":
        net.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()
