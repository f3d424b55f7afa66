"""Runs trainer jobs under ``torchrun`` for tests/training/test_distributed.py (one launch, several jobs).

    torchrun --nproc-per-node 2 tests/training/dist_worker.py JOBS.pkl

Each job is a dict: spec (an SFTSpec as a dict), init, examples, out, pad_id, and optionally kill_at (a step at
which rank 1 SIGKILLs itself: a crash mid-epoch, after the checkpoint before it; the launch then fails); or a DPO
job: dpo (a DPOSpec as a dict), init, pairs, out (``steca_train.dpo.train_dpo``, TRL under torchrun).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

import steca_data  # noqa: F401 - first: hides torch extension wheels that cannot load (steca_data.compat)


def main(path: str) -> None:
    import torch

    from steca_data.recipe.agent import SFTSpec
    from steca_data.training.trainer import train

    torch.set_num_threads(1)
    with open(path, "rb") as f:
        jobs = pickle.load(f)
    rank = int(os.environ.get("RANK", "0"))
    for job in jobs:
        if "dpo" in job:
            from steca_data.recipe.reinforce import DPOSpec
            from steca_train.dpo import train_dpo

            train_dpo(DPOSpec(**job["dpo"]), job["init"], job["pairs"], job["out"], seed=0, threads=1)
            continue

        def progress(step, total, loss, kill_at=job.get("kill_at")):
            if kill_at is not None and step == kill_at and rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)

        spec = SFTSpec(**job["spec"])
        train(spec, job["init"], job["examples"], job["out"], progress=progress, pad_id=job["pad_id"])


if __name__ == "__main__":
    main(sys.argv[1])
