"""``steca-data export``: a finished build, rewritten for the trainer that will consume it.

One format per consumer (``FORMATS``): TRL's SFT and DPO trainers, the FastChat-based scripts of
ETO / IPR / STeCa, and the formats training methods declare for themselves (``methods``: the data side of
each method, STeP-style partial masking among them). An export reads the build's dataset rows and its
DuckDB cache read-only, computes nothing, and writes the same bytes for the same build.

Layout: ``build_dir`` reads a build, ``engine_view`` the units behind its rows, ``chat`` and ``pairs``
shape conversations and preference pairs, one module per format assembles a ``Bundle``, ``card`` and
``writer`` turn it into files, ``cli`` is the command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steca_data.core.outputs import OutputPathError, check_output_dir

from . import sharegpt, trl_dpo, trl_sft
from .build_dir import BuildDir, ExportError
from .bundle import Bundle
from .card import render_card
from .methods import formats as method_formats
from .writer import write_bundle

FORMATS: dict[str, Callable[[BuildDir], Bundle]] = {
    "trl-sft": trl_sft.export,
    "trl-dpo": trl_dpo.export,
    "sharegpt": sharegpt.export,
    **method_formats(),
}

__all__ = ["FORMATS", "BuildDir", "ExportError", "ExportResult", "check_request", "export_build"]


@dataclass(frozen=True)
class ExportResult:
    format: str
    out: Path
    counts: dict[str, int]
    skipped: dict[str, int]


def check_request(build_dir: Path, fmt: str, out: Path | str, overwrite: bool = False) -> Path:
    """Every check that needs no reading of the build's data: raised as ``ExportError`` before any work.

    The output folder follows the one output-path policy (``core.outputs``): only an earlier export may be
    replaced, and only with ``--overwrite``; never a build, the current directory or an ancestor of either."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    try:
        out = check_output_dir(out, "export", sources=[Path(build_dir)], overwrite=overwrite)
    except OutputPathError as exc:
        raise ExportError(str(exc)) from None
    build, target = Path(build_dir).resolve(), out.resolve()
    if build in target.parents:
        raise ExportError(f"{out}: the output must lie outside the build directory {build} (and not contain it)")
    return out


def export_build(build_dir: Path, fmt: str, out: Path | str, overwrite: bool = False) -> ExportResult:
    """Export ``build_dir`` as ``fmt`` into ``out`` (replaced as a whole, atomically)."""
    out = check_request(build_dir, fmt, out, overwrite)
    build = BuildDir.open(Path(build_dir))
    try:
        bundle = FORMATS[fmt](build)
        write_bundle(bundle, render_card(bundle, build), out)
    finally:
        build.close()
    return ExportResult(fmt, out, bundle.counts(), dict(bundle.skipped))
