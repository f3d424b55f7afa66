"""Switching a build's outputs (``dataset/``, ``parquet/``, ``README.md``, ``recipe.yaml``) as one unit.

The new set is written into ``<build>/.outputs.tmp/`` and marked complete; then the old entries move to
``<build>/.outputs.old/`` and the new ones into place, one rename each. A kill before the mark leaves the
old set (the half-written staging folder is deleted next time); a kill after it is rolled forward by the
next build (``recover``), so readers see the old set or the new one, never a mix. ``pending`` tells
readers (``inspect``) that a switch was interrupted.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STAGING = ".outputs.tmp"
RETIRED = ".outputs.old"
COMPLETE = ".complete"
OUTPUTS = ("dataset", "parquet", "README.md", "recipe.yaml")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staging_dir(build: Path) -> Path:
    """An empty staging folder for the next set (whatever an interrupted build left there is removed)."""
    recover(build)
    staging = build / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def pending(build: Path) -> bool:
    """A complete new set waits to be switched in (a build was killed mid-switch)."""
    return (build / STAGING / COMPLETE).is_file()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _roll_forward(build: Path, staged: list[str]) -> None:
    """Old entries aside, then the staged ones in; an output not staged leaves with the old set. Safe to
    run again after a kill at any point: an entry already moved is not moved twice."""
    staging, retired = build / STAGING, build / RETIRED
    retired.mkdir(exist_ok=True)
    for name in OUTPUTS:
        target = build / name
        if name in staged and not (staging / name).exists():
            continue  # the new entry is already in place
        if target.exists() or target.is_symlink():
            if (retired / name).exists():
                _remove(target)
            else:
                target.rename(retired / name)
    for name in staged:
        if (staging / name).exists():
            (staging / name).rename(build / name)
    _fsync_dir(build)


def recover(build: Path) -> None:
    """Finish or undo an interrupted switch: roll a complete staged set forward, drop an incomplete one."""
    staging, retired = build / STAGING, build / RETIRED
    if pending(build):
        _roll_forward(build, (staging / COMPLETE).read_text().split())
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(retired, ignore_errors=True)


def switch(build: Path, names: list[str]) -> None:
    """Make the staged ``names`` the build's outputs; output entries not staged (a format the recipe no
    longer asks for) leave with the old set."""
    staging = build / STAGING
    _fsync_dir(staging)
    mark = staging / (COMPLETE + ".tmp")
    mark.write_text("\n".join(names))
    mark.rename(staging / COMPLETE)  # atomic: from here on the new set wins
    _roll_forward(build, names)
    recover(build)
