"""``steca-data alfworld``: generate verified ALFWorld games offline."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from steca_data.core.outputs import OutputPathError, check_output_dir

alfworld_app = typer.Typer(no_args_is_help=True, help="ALFWorld: generate games for the real engine, offline.")
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@alfworld_app.command()
def generate(
    out: Path = typer.Option(Path("builds/alfworld-games"), "--out", help="Root of the game tree to write."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same games."),
    games: int = typer.Option(200, "--games", min=1, help="Train games."),
    eval_games: int | None = typer.Option(
        None, "--eval-games", min=0, help="Games in valid_seen and in valid_unseen each (default: games / 5)."
    ),
    size: str = typer.Option("small", "--size", help="small (7 receptacles, few objects) | full (whole floor plan)."),
    task_types: str = typer.Option("all", "--task-types", help="'all' or comma-separated ALFWorld task types."),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="Processes (each uses one CPU core)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log lines instead of a progress bar."),
) -> None:
    """Write train / valid_seen / valid_unseen games (unseen = held-out floor plans), each verified by
    replaying its planner walkthrough in the real engine; the fixed hand-coded expert is scored on all."""
    from steca_data.core.progress import Reporter
    from steca_data.envs.alfworld.generate import generate as run
    from steca_data.envs.alfworld.problem import SIZES, TASK_TYPES

    if size not in SIZES:
        _fail(f"--size must be one of {', '.join(SIZES)} (got {size!r})")
    types = TASK_TYPES if task_types == "all" else tuple(t.strip() for t in task_types.split(",") if t.strip())
    unknown = [t for t in types if t not in TASK_TYPES]
    if unknown or not types:
        _fail(f"--task-types: unknown {unknown or task_types!r}; known: all, {', '.join(TASK_TYPES)}")
    if out.is_dir() and (out / "manifest.json").exists():
        _fail(f"--out {out} already holds a generated set (manifest.json); choose another folder or delete it")
    try:
        out = check_output_dir(out, "games")
    except OutputPathError as exc:
        _fail(str(exc))
    if quiet:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    n_eval = games // 5 if eval_games is None else eval_games
    counts = {"train": games, "valid_seen": n_eval, "valid_unseen": n_eval}
    out.mkdir(parents=True, exist_ok=True)
    reporter = Reporter(quiet=quiet, console=err)
    with reporter.track("alfworld games", sum(counts.values()), "games") as advance:
        report = run(out, seed, counts, size=size, task_types=types, workers=workers, advance=advance)
    table = Table(title=f"{out} (seed {seed}, {size}, {report.seconds:.0f} s)")
    table.add_column("task type")
    for fold in counts:
        table.add_column(fold, justify="right")
    by_fold = report.counts()
    for t in types:
        table.add_row(t, *(str(by_fold[f].get(t, 0)) for f in counts))
    err.print(table)
    kept, failed = report.kept(), report.failed()
    rejected = sum(len(r.rejected) for r in report.results)
    err.print(
        f"kept {len(kept)} games (walkthrough verified); {rejected} draws rejected and redrawn; "
        f"fixed hand-coded expert won {report.expert_win_rate():.1%}; details in {out / 'manifest.json'}",
        highlight=False,
    )
    for r in failed:
        err.print(f"[red]failed[/red] {r.fold} #{r.index}: {r.rejected[-1] if r.rejected else 'no draw'}")
    if failed:
        raise typer.Exit(1)
