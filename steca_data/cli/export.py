"""The ``steca-data export`` command: one build rewritten for one consumer (TRL, FastChat-style scripts, STeP)."""

from __future__ import annotations

from pathlib import Path

import typer

from steca_data.cli.common import err, fail
from steca_data.export import FORMATS, ExportError, export_build


def export_command(
    build_dir: Path = typer.Argument(..., help="A finished build directory (the recipe's output.dir)."),
    format: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    out: str = typer.Option(..., "--out", "-o", help="Directory to write; created, must be empty unless --overwrite."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an earlier export in that directory (never anything else)."
    ),
) -> None:
    """Rewrite a build for one consumer: TRL SFT / DPO, the ETO / IPR / STeCa ShareGPT files, or STeP.

    Reads the build's rows and cache (read-only), computes nothing, writes a dataset and a README card;
    the same build always gives the same bytes.
    """
    try:
        result = export_build(build_dir, format, out, overwrite=overwrite)
    except ExportError as exc:
        fail(str(exc), code=2)
        return
    counts = ", ".join(f"{name} {n}" for name, n in result.counts.items()) or "nothing"
    err.print(f"exported {build_dir} as {result.format} to {result.out}: {counts}", highlight=False, soft_wrap=True)
    for reason, n in sorted(result.skipped.items()):
        err.print(f"  left out {n} × {reason}", highlight=False, soft_wrap=True)
