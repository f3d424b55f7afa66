"""The warm-up itself: init-model and SFT on the build's expert rows (the paper's warm-up SFT).

Written to a temp directory and renamed when complete, so a killed warm-up leaves nothing that looks done.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from steca_data.core.schema_io import to_hf_dataset
from steca_data.episodes.rows import expert_rows
from steca_data.stages.base import BuildContext
from steca_data.stages.experts import ExpertTrajectories


def warm_up(ctx: BuildContext, final: Path) -> dict:
    """Train the base agent into ``final``; returns what the artifacts table records about it."""
    from datasets import DatasetDict
    from datasets.utils.logging import disable_progress_bar

    from steca_data.training.data import load_rows
    from steca_data.training.fit import fit
    from steca_data.training.init_model import corpus_texts, init_model
    from steca_data.training.quiet import quiet_transformers

    r = ctx.recipe
    work = final.with_name(final.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    rows = expert_rows(r, ctx.get(ExpertTrajectories).load(ctx))
    if not rows:
        raise RuntimeError("the warm-up needs expert trajectories, and the expert stage produced none")
    disable_progress_bar()
    quiet_transformers()
    DatasetDict({"expert": to_hf_dataset("expert", rows)}).save_to_disk(str(work / "data"))
    ctx.reporter.info(
        f"warm-up: init-model ({r.model.hidden_size}d x {r.model.num_layers} layers) on {len(rows)} expert trajectories"
    )
    init_model(r.model, corpus_texts(work / "data", ["expert"]), work / "init")
    sft_spec = r.sft.model_copy(update={"datasets": ["expert"]})
    rows = load_rows(work / "data", ["expert"])
    trained = fit(sft_spec, work / "init", rows, work / "sft", r.prompt.history, ctx.reporter, "warm-up sft",
                  over_budget="fail").result  # fmt: skip
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return {
        "path": str(final / "sft"),
        "steps": trained.steps,
        "final_loss": trained.final_loss,
        "seconds": trained.seconds,
    }
