"""``steca-data export``: a finished build, rewritten for the trainer that will consume it.

One format per consumer (``FORMATS``): TRL's SFT and DPO trainers, the FastChat-based scripts of
ETO / IPR / STeCa, and STeP-style partial masking. An export reads the build's dataset rows and its
DuckDB cache read-only, computes nothing, and writes the same bytes for the same build.

Layout: ``build_dir`` reads a build, ``engine_view`` the units behind its rows, ``chat`` and ``pairs``
shape conversations and preference pairs, one module per format assembles a ``Bundle``, ``card`` and
``writer`` turn it into files, ``cli`` is the command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import sharegpt, step, trl_dpo, trl_sft
from .build_dir import BuildDir, ExportError
from .bundle import Bundle
from .card import render_card
from .writer import write_bundle

FORMATS: dict[str, Callable[[BuildDir], Bundle]] = {
    "trl-sft": trl_sft.export,
    "trl-dpo": trl_dpo.export,
    "sharegpt": sharegpt.export,
    "step": step.export,
}

__all__ = ["FORMATS", "BuildDir", "ExportError", "ExportResult", "check_request", "export_build"]


@dataclass(frozen=True)
class ExportResult:
    format: str
    out: Path
    counts: dict[str, int]
    skipped: dict[str, int]


def check_request(build_dir: Path, fmt: str, out: Path, overwrite: bool = False) -> None:
    """Every check that needs no reading of the build's data: raised as ``ExportError`` before any work."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out}: directory is not empty (pass --overwrite to replace it)")
    build_dir, out = Path(build_dir).resolve(), out.resolve()
    if out == build_dir or build_dir in out.parents or out in build_dir.parents:
        raise ExportError(f"{out}: the output must lie outside the build directory {build_dir} (and not contain it)")


def export_build(build_dir: Path, fmt: str, out: Path, overwrite: bool = False) -> ExportResult:
    """Export ``build_dir`` as ``fmt`` into ``out`` (replaced as a whole, atomically)."""
    out = Path(out)
    check_request(build_dir, fmt, out, overwrite)
    build = BuildDir.open(Path(build_dir))
    try:
        bundle = FORMATS[fmt](build)
        write_bundle(bundle, render_card(bundle, build), out)
    finally:
        build.close()
    return ExportResult(fmt, out, bundle.counts(), dict(bundle.skipped))
