"""Iterated methods (IPR, ETO): each round after the first explores with the policy the last round trained.

A round's exploration is the base build's engine run again with the new model as ``policy.model``, into the
same cache: every proposal and rollout key holds the policy id, so the rounds share one cache without a
collision and a rerun finds each round's units. Its rows go to a round folder (a build directory of its own,
read through ``BuildDir`` like any build); Dc is left out (no reflections are needed to pair). The experts are
the base build's, read from its cache (``build.json`` names them): the recipe's input files (an imported
ShareGPT file) are not read again, so a build directory copied elsewhere without them still iterates.
"""

from __future__ import annotations

from pathlib import Path

from steca_data.export.build_dir import BuildDir
from steca_train.methods.base import MethodRun

ROUND_DATASETS = ("expert", "de", "ds")


def explore(run: MethodRun, model: Path, round_: int) -> BuildDir:
    """Round ``round_``'s build: the recipe's engine with ``model`` as the policy, in the base build's cache."""
    from steca_data.build.builder import Builder
    from steca_data.build.manifest import built_experts

    r = run.recipe
    cache = run.build.require_cache("an iterated method")
    out = run.scratch / f"round-{round_}" / "build"
    recipe = r.model_copy(
        update={
            "policy": r.policy.model_copy(update={"model": str(model)}),
            "datasets": [d for d in r.datasets if d in ROUND_DATASETS],
            "output": r.output.model_copy(update={"dir": str(out), "cache": str(cache.resolve()), "push_to_hub": None}),
        }
    )
    run.reporter.info(f"round {round_}: exploring with {model.name}")
    Builder(recipe, run.reporter, experts=built_experts(run.build.path)).build()
    if r.policy.backend == "vllm":  # the round's model explores once: its engine's memory is the next model's
        from steca_data.policies.vllm_policy import release_engines

        release_engines(str(model))
    explored = BuildDir.open(out)
    return explored.share(run.build.shared_cache) if run.build.shared_cache is not None else explored


def round_model(run: MethodRun, round_: int, rounds: int) -> Path:
    """Where round ``round_`` writes its model: the run's output for the last round, else the scratch folder."""
    return run.out if round_ == rounds else run.scratch / f"round-{round_}" / "model"
