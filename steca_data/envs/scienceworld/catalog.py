"""The ScienceWorld task catalog (``catalog.json``): task types, fold ranges, ETO's lists and step limits.

Read without a JVM, so recipes are checked and tasks listed before a simulator starts. ``make_catalog``
regenerates the file from the JAR and ETO's split files.

Folds: ``train`` / ``dev`` / ``test`` are ScienceWorld's own variation ranges (7,207 variations of 30 task
types), listed round-robin over the selected task types so that any block covers them all;
``eto_train`` / ``eto_dev`` / ``eto_test`` are ETO's lists (24 task types; 1,483 / 194 / 211), in ETO's
order. ETO's train list holds 357 dev-fold variations, 54 of them also in its dev list: ``eto_train``
drops those 54, so a held-out ETO split is never trained on. ETO (and STeP after it) call the dev list
"seen" and the test list "unseen": the test variations hold objects and substances that train and dev
never use, so the ``test`` folds are the unseen ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BASE_FOLDS = ("train", "dev", "test")
ETO_FOLDS = ("eto_train", "eto_dev", "eto_test")
FOLDS = BASE_FOLDS + ETO_FOLDS
UNSEEN_FOLDS = frozenset({"test", "eto_test"})
ETO_GAME = "eto"  # env.game: ETO's 24 task types
ALL_GAME = "all"  # env.game: all 30 task types


@dataclass(frozen=True)
class TaskType:
    name: str
    id: str
    title: str
    variations: int
    folds: dict[str, tuple[int, int]]
    step_limit: int


@cache
def _raw() -> dict:
    return json.loads(Path(__file__).with_name("catalog.json").read_text())


@cache
def task_types() -> dict[str, TaskType]:
    """Task types by name, in ScienceWorld's task id order."""
    return {
        t["name"]: TaskType(
            t["name"], t["id"], t["title"], t["variations"], {k: tuple(v) for k, v in t["folds"].items()},
            t["step_limit"],
        )
        for t in _raw()["tasks"]
    }  # fmt: skip


@cache
def eto_lists() -> dict[str, tuple[tuple[str, int], ...]]:
    """ETO's (task type, variation) lists per fold; eto_train without the pairs ETO also evaluates on."""
    raw = {f"eto_{k}": [(n, int(v)) for n, v in pairs] for k, pairs in _raw()["eto"].items()}
    held_out = set(raw["eto_dev"]) | set(raw["eto_test"])
    raw["eto_train"] = [p for p in raw["eto_train"] if p not in held_out]
    return {k: tuple(v) for k, v in raw.items()}


def selected_types(game: str) -> list[str] | str:
    """The task types ``env.game`` selects (all, eto, or comma-separated names), or an error message."""
    types = task_types()
    if game == ALL_GAME:
        return list(types)
    if game == ETO_GAME:
        eto = {n for n, _ in eto_lists()["eto_test"]}
        return [n for n in types if n in eto]
    names = [n.strip() for n in game.split(",") if n.strip()]
    unknown = [n for n in names if n not in types]
    if unknown or not names:
        return f"unknown ScienceWorld task type {', '.join(unknown) or game!r} (use all, eto or names like boil, melt)"
    return [n for n in types if n in names]


@cache
def fold_tasks(game: str, fold: str) -> tuple[tuple[str, int], ...]:
    """Every (task type, variation) of ``fold`` for the selection ``game``, in listing order."""
    names = selected_types(game)
    assert isinstance(names, list), names
    if fold in ETO_FOLDS:
        keep = set(names)
        return tuple(p for p in eto_lists()[fold] if p[0] in keep)
    types = task_types()
    columns = [[(n, v) for v in range(*types[n].folds[fold])] for n in names]
    out: list[tuple[str, int]] = []
    for row in range(max((len(c) for c in columns), default=0)):
        out.extend(c[row] for c in columns if row < len(c))
    return tuple(out)
