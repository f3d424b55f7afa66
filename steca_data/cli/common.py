"""What both command-line tools (``steca-data`` and ``steca-train``) do alike: fail with one line, load
a recipe or exit 2 with its one-line errors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def recipe_or_exit(path: Path, overrides: list[str]):
    """The validated recipe, or each problem on its own line and exit code 2 (no traceback, no work)."""
    from steca_data.recipe.model import RecipeError, load_recipe

    try:
        return load_recipe(path, overrides)
    except RecipeError as exc:
        for line in exc.lines:
            err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def reporter(quiet: bool):
    """Rich bars on a terminal; timestamped log lines (every few seconds) with --quiet."""
    import logging
    import sys

    from steca_data.core.progress import Reporter

    if quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    return Reporter(quiet=quiet, console=err)
