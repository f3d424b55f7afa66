"""TextWorldExpress facts that need no JVM: the version string and the tasks (seeds) of a split."""

from __future__ import annotations

from steca_data.core.schemas import Task
from steca_data.envs.spec import EnvSpec
from steca_data.envs.textworld_express.catalog import FOLD_SEED_BASE, canonical_params

ENV_NAME = "textworld_express"


def twx_version() -> str:
    from textworld_express.version import __version__

    return f"textworld-express {__version__}"


def list_twx_tasks(spec: EnvSpec, split_name: str) -> list[Task]:
    """One task per seed: fold base + start .. start + count (TWX draws each game from its seed)."""
    split = spec.splits[split_name]
    params = canonical_params({**spec.params, **(split.params or {})})
    base = FOLD_SEED_BASE[split.fold]
    return [
        Task(
            task_id=f"twx/{spec.game}/{params}/{split.fold}/{base + i}",
            env=ENV_NAME,
            game=spec.game,
            params=params,
            seed=base + i,
            fold=split.fold,
            split=split_name,
            unseen=split.fold != "train",
        )
        for i in range(split.start, split.start + split.count)
    ]
