"""``steca-train``: train and evaluate agents on steca-data builds."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def version() -> None:
    """Print the version."""
    from steca_data import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
