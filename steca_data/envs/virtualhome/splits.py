"""Folds of the kept tasks: ``unseen`` (held-out titles), ``seen`` (held-out tasks of trained titles), ``train``.

Scene 1 is the only scene, so "unseen" cannot be a scene; it is a set of task titles (activities) that no
training task shares, about 20 % of the tasks. Everything is decided by SHA-256 of fixed strings, so the folds
are the same on every machine and do not depend on dict or file-system order:

- titles are ordered by ``sha256("virtualhome/unseen/" + title)``; the first ones, whole, go to ``unseen``
  until it holds at least ``UNSEEN_FRACTION`` of the kept tasks;
- the remaining tasks are ordered by ``sha256("virtualhome/seen/" + file_id)``; the first
  ``round(SEEN_FRACTION * kept)`` go to ``seen``, the rest to ``train``;
- inside a fold, tasks are ordered by ``sha256("virtualhome/order/" + file_id)``, which mixes titles, so a
  recipe block ``[start, start + count)`` of any size covers many activities.

STeCa's own test files add three folds: ``steca_seen`` / ``steca_unseen`` (their 247 rows each, in file order;
see ``steca_tests``) and ``train_steca``, the ``train`` fold without the scene-1 tasks that those files test
(same order), so that a recipe evaluating on STeCa's files never trains on one of their tasks.
"""

from __future__ import annotations

import hashlib
from functools import cache

SCENE_FOLDS = ("train", "seen", "unseen")  # a partition of the kept scene-1 tasks
STECA_FOLDS = ("steca_seen", "steca_unseen")
FOLDS = (*SCENE_FOLDS, "train_steca", *STECA_FOLDS)
UNSEEN_FRACTION = 0.20
SEEN_FRACTION = 0.08  # leaves >= 300 train tasks (the expert set) after ~22 % unseen
# What ``fold_sizes()`` gives for the shipped tasks.json (a test keeps them equal): cheap recipe validation.
FOLD_SIZES = {"train": 305, "seen": 35, "unseen": 97, "train_steca": 274, "steca_seen": 247, "steca_unseen": 247}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def folds() -> dict[str, tuple[tuple[str, str], ...]]:
    """fold -> ordered ``(file_id, title)`` pairs."""
    from steca_data.envs.virtualhome.manifest import kept_tasks  # not at import: `python -m ...manifest` runs it

    tasks = [(e["file_id"], e["title"]) for e in kept_tasks()]
    by_title: dict[str, int] = {}
    for _, title in tasks:
        by_title[title] = by_title.get(title, 0) + 1
    unseen_titles: set[str] = set()
    held = 0
    for title in sorted(by_title, key=lambda t: (_h("virtualhome/unseen/" + t), t)):
        if held >= UNSEEN_FRACTION * len(tasks):
            break
        unseen_titles.add(title)
        held += by_title[title]
    rest = sorted((t for t in tasks if t[1] not in unseen_titles), key=lambda t: (_h("virtualhome/seen/" + t[0]), t))
    n_seen = round(SEEN_FRACTION * len(tasks))
    members = {
        "unseen": [t for t in tasks if t[1] in unseen_titles],
        "seen": rest[:n_seen],
        "train": rest[n_seen:],
    }
    ordered = {
        fold: tuple(sorted(items, key=lambda t: (_h("virtualhome/order/" + t[0]), t)))
        for fold, items in members.items()
    }
    tested = steca_tested_ids()
    return {**ordered, "train_steca": tuple(t for t in ordered["train"] if t[0] not in tested)}


@cache
def steca_tested_ids() -> frozenset[str]:
    """Scene-1 file ids that STeCa's shipped test files (seen and unseen) name."""
    from steca_data.envs.virtualhome.steca_tests import load_rows

    return frozenset(r.scene_file_id for fold in STECA_FOLDS for r in load_rows(fold) if r.scene_file_id)


def fold_tasks(fold: str) -> list[tuple[str, str]]:
    """The ordered ``(file_id, title)`` list of a fold (not the STeCa test folds: ``steca_tests`` lists those)."""
    if fold not in FOLDS or fold in STECA_FOLDS:
        raise ValueError(f"virtualhome has folds {', '.join(FOLDS)} (got {fold!r})")
    return list(folds()[fold])


def fold_sizes() -> dict[str, int]:
    from steca_data.envs.virtualhome.steca_tests import load_rows

    return {**{fold: len(items) for fold, items in folds().items()}, **{f: len(load_rows(f)) for f in STECA_FOLDS}}


def check_disjoint() -> None:
    """Raise if a task or (for unseen) a title occurs in two folds."""
    all_folds = {fold: items for fold, items in folds().items() if fold in SCENE_FOLDS}  # train_steca: in train
    seen_ids: dict[str, str] = {}
    for fold, items in all_folds.items():
        for file_id, _ in items:
            if file_id in seen_ids:
                raise AssertionError(f"task {file_id} is in folds {seen_ids[file_id]} and {fold}")
            seen_ids[file_id] = fold
    unseen_titles = {title for _, title in all_folds["unseen"]}
    leaked = unseen_titles & {title for fold in ("train", "seen") for _, title in all_folds[fold]}
    if leaked:
        raise AssertionError(f"held-out titles also in training folds: {sorted(leaked)}")
