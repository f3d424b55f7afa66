"""THE list of training methods: one line per method, imported only when a recipe or command names it.

The shape of ``steca_data.envs.registry``: entries are ``module:Class`` strings; the functions below are what
the experiment runner, the CLI and the report call, and none of them knows a method by name. Each method's
module holds its data selection, how it trains, its defaults and its one-line description (``base.Method``).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from pydantic import ValidationError

from steca_train.methods.base import Method

METHODS: dict[str, str] = {
    "sft": "steca_train.methods.sft:SFT",
    "rft": "steca_train.methods.rft:RFT",
    "steca-sft": "steca_train.methods.steca_sft:StecaSFT",
    "steca-dpo": "steca_train.methods.steca_dpo:StecaDPO",
    "steca": "steca_train.methods.steca:Steca",
    "ipr": "steca_train.methods.ipr:IPR",
    "eto": "steca_train.methods.eto:ETO",
    "step": "steca_train.methods.step:STeP",
}


class UnknownMethod(ValueError):
    """A name that no registry line declares."""


@cache
def _load(target: str) -> Method:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)()


def method_names() -> list[str]:
    """Every registered method, in the registry's order (the report's row order)."""
    return list(METHODS)


def method(name: str) -> Method:
    target = METHODS.get(name)
    if target is None:
        raise UnknownMethod(f"unknown method {name!r} (known: {', '.join(method_names())})")
    return _load(target)


def recipe_methods(recipe) -> list[str]:
    """The methods a recipe's experiment runs: ``experiment.methods``, else every registered one."""
    return list(recipe.experiment.methods or method_names())


def check_methods(recipe, names: list[str] | None = None, where: str = "experiment.methods") -> str | None:
    """The first problem with running ``names`` (default: the recipe's experiment) on ``recipe``, as one line
    naming the field, or None. Run before any work (exit 2)."""
    names = recipe_methods(recipe) if names is None else names
    for i, name in enumerate(names):
        if name not in METHODS:
            return f"{where}[{i}]: unknown method {name!r} (known: {', '.join(method_names())})"
    for name in recipe.reinforce.methods:
        if name not in METHODS:
            return f"reinforce.methods.{name}: unknown method (known: {', '.join(method_names())})"
    for name in names:
        m = method(name)
        try:
            m.options(recipe)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            return (
                f"reinforce.methods.{name}.{field}: {error['msg']}"
                if field
                else f"reinforce.methods.{name}: {error['msg']}"
            )
        problem = m.check(recipe)
        if problem:
            return problem
    return None
