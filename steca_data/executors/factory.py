"""The executor a recipe's ``executor`` section names (Ray is imported only when a build plays on it)."""

from __future__ import annotations

from collections.abc import Callable

from steca_data.executors.base import Executor
from steca_data.executors.local import LocalExecutor


def make_executor(recipe, on_start: Callable[[], None] | None = None) -> Executor:
    spec = recipe.executor
    if spec.kind == "ray":
        from steca_data.executors.ray_executor import RayExecutor

        return RayExecutor(recipe.env, recipe.env.workers, spec, on_start=on_start)
    return LocalExecutor(recipe.env, recipe.env.workers, spec.max_active, on_start=on_start)
