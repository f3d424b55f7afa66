"""ScienceWorld facts that need no JVM: the version string and the tasks of a recipe split."""

from __future__ import annotations

from steca_data.core.schemas import Task
from steca_data.envs.scienceworld.catalog import UNSEEN_FOLDS, fold_tasks
from steca_data.envs.spec import EnvSpec

ENV_NAME = "scienceworld"


def sciworld_version() -> str:
    from importlib import metadata

    return f"scienceworld {metadata.version('scienceworld')}"


def list_sciworld_tasks(spec: EnvSpec, split_name: str) -> list[Task]:
    """One task per (task type, variation) of the split's block of its fold."""
    split = spec.splits[split_name]
    simplifications = spec.simplifications  # type: ignore[attr-defined]
    pairs = fold_tasks(spec.game, split.fold)[split.start : split.start + split.count]
    return [
        Task(
            task_id=f"sciworld/{name}/{simplifications or 'none'}/{variation}",
            env=ENV_NAME,
            game=name,
            params=f"simplifications={simplifications}",
            seed=variation,
            fold=split.fold,
            split=split_name,
            unseen=split.fold in UNSEEN_FOLDS,
        )
        for name, variation in pairs
    ]
