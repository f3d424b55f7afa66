"""THE list of environments: one line per plugin, imported only when a recipe or command names it.

Entries are ``module:Class`` strings rather than imports so that listing or validating one environment
never imports another (ALFWorld's engine, a JVM wrapper, ...). The functions below are what the rest of
the code calls; none of them knows an environment by name.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

from steca_data.core.schemas import Task
from steca_data.envs.base import EnvBackend
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec

PLUGINS: dict[str, str] = {
    "textworld_express": "steca_data.envs.textworld_express.plugin:TextWorldExpressPlugin",
    "alfworld": "steca_data.envs.alfworld.plugin:AlfworldPlugin",
    "virtualhome": "steca_data.envs.virtualhome.plugin:VirtualHomePlugin",
}


class UnknownEnvironment(ValueError):
    """A name that no registry line declares."""


@cache
def _load(target: str) -> EnvPlugin:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)()


def plugin_names() -> list[str]:
    return sorted(PLUGINS)


def plugin(name: str) -> EnvPlugin:
    """The plugin registered as ``name`` (its module is imported on first use)."""
    target = PLUGINS.get(name)
    if target is None:
        raise UnknownEnvironment(f"unknown environment {name!r} (known: {', '.join(plugin_names())})")
    return _load(target)


def find_plugin(name: str | None) -> EnvPlugin | None:
    """The plugin registered as ``name``, or None (for data that names an environment no longer registered)."""
    return plugin(name) if name in PLUGINS else None


def env_specs() -> tuple[type[EnvSpec], ...]:
    """The ``env`` section models of all registered environments (imports every plugin's light module)."""
    return tuple(plugin(name).spec for name in PLUGINS)


def env_version(spec: EnvSpec) -> str:
    return plugin(spec.name).version()


def list_tasks(spec: EnvSpec, split_name: str) -> list[Task]:
    return plugin(spec.name).tasks(spec, split_name)


def task_notes(spec: EnvSpec, split_name: str) -> dict[str, Any] | None:
    """What a split's block holds beyond its tasks (how many are runnable here, and why not the rest)."""
    return plugin(spec.name).task_notes(spec, split_name)


def make_backend(spec: EnvSpec) -> EnvBackend:
    """Instantiate the backend a recipe's ``env`` section names (imports only that backend)."""
    return plugin(spec.name).backend(spec)
