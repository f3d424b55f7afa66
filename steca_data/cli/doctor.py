"""``steca-data doctor [RECIPE]``: one screen saying what this machine has for steca-data and what to do."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from steca_data.cli.common import err
from steca_data.cli.common import recipe_or_exit as _recipe

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def doctor_command(
    recipe: Path | None = typer.Argument(None, help="A recipe: its needs are marked, and a failed one exits 1."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field, as in build."),
    engine: bool = typer.Option(False, "--engine", help="Also start a tiny vLLM engine in a fresh interpreter."),
) -> None:
    """Check Python, torch, vLLM, Java, planners, simulators, GPUs, caches and disk; say how to fix each."""
    from steca_data.build.doctor import run_checks

    r = _recipe(recipe, set_) if recipe is not None else None
    with err.status("checking (vLLM is probed in a fresh interpreter: ~10-60 s)…"):
        checks = run_checks(r, engine)
    out = Console(soft_wrap=True, highlight=False)
    for c in checks:
        style = _STYLE[c.status]
        mark = f"[{style}]{c.status:<4}[/{style}]{'*' if c.needed else ' '}"
        out.print(f"{mark} [bold]{escape(c.name)}[/bold]: {escape(c.detail)}")
        if c.fix and c.status != "ok":
            out.print(f"       → {escape(c.fix)}")
    out.print(f"* needed{f' by {escape(r.name)}' if r else ' by every recipe'}")
    failed = [c for c in checks if c.needed and c.status == "fail"]
    if failed:
        names = ", ".join(c.name for c in failed)
        err.print(f"[red]error:[/red] {escape(names)}: needed {'by ' + r.name if r else ''} and failing; see above")
        raise typer.Exit(1)
