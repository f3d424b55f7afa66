"""Cheap facts about a recipe's environment that need no simulator: version and task list."""

from __future__ import annotations

from steca_data.core.schemas import Task
from steca_data.envs.textworld_express.catalog import FOLD_SEED_BASE, canonical_params


def env_version(spec) -> str:
    if spec.name == "textworld_express":
        from textworld_express.version import __version__

        return f"textworld-express {__version__}"
    if spec.name == "alfworld":
        from steca_data.envs.alfworld import alfworld_version  # type: ignore[import-not-found]

        return alfworld_version()
    raise ValueError(f"unknown environment {spec.name!r}")


def list_tasks(spec, split_name: str) -> list[Task]:
    if spec.name == "textworld_express":
        split = spec.splits[split_name]
        params = canonical_params({**spec.params, **(split.params or {})})
        base = FOLD_SEED_BASE[split.fold]
        return [
            Task(
                task_id=f"twx/{spec.game}/{params}/{split.fold}/{base + i}",
                env=spec.name,
                game=spec.game,
                params=params,
                seed=base + i,
                fold=split.fold,
                split=split_name,
                unseen=split.fold != "train",
            )
            for i in range(split.start, split.start + split.count)
        ]
    if spec.name == "alfworld":
        from steca_data.envs.alfworld import list_alfworld_tasks  # type: ignore[import-not-found]

        return list_alfworld_tasks(spec, split_name)
    raise ValueError(f"unknown environment {spec.name!r}")
