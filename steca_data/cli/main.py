"""``steca-data``: build, plan, query, inspect and publish step-level agent datasets."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from steca_data.cli.common import err
from steca_data.cli.common import fail as _fail
from steca_data.cli.common import recipe_or_exit as _recipe
from steca_data.cli.export import export_command
from steca_data.envs.registry import plugin, plugin_names

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
schemas_app = typer.Typer(no_args_is_help=True, help="JSON Schemas of every stored and emitted model.")
app.add_typer(schemas_app, name="schemas")
app.command("export")(export_command)
for _env in plugin_names():  # env-specific commands, e.g. a game generator
    plugin(_env).register_cli(app)

out = Console()

SetOption = typer.Option([], "--set", help="Override a recipe field: --set env.max_steps=40 (repeatable).")


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if quiet else logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr
    )


@app.command()
def build(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: list[str] = SetOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log lines instead of progress bars."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="Hub dataset repo to push to afterwards."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry tasks recorded as failed."),
) -> None:
    """Build the recipe's datasets, computing only what the cache lacks."""
    from steca_data.build.builder import Builder
    from steca_data.build.output import PushError
    from steca_data.build.output import push_to_hub as push
    from steca_data.core.progress import Reporter

    _setup_logging(quiet)
    r = _recipe(recipe, set_)
    reporter = Reporter(quiet=quiet, console=err)
    summary = Builder(r, reporter, retry_failed=retry_failed).build()
    for res in summary.results:
        extra = f", {res.failed} failed (see the failures table)" if res.failed else ""
        reporter.info(f"{res.stage}: {res.computed} computed, {res.cached} cached{extra}")
    o = summary.output
    if summary.computed == 0 and o is not None and not o.written:
        reporter.info(
            f"[green]Nothing to do:[/green] all {summary.cached} units cached and outputs up to date ({r.build_dir})."
        )
    else:
        counts = ", ".join(f"{k}={v}" for k, v in (o.counts if o else {}).items())
        reporter.info(f"[green]Built[/green] {r.build_dir} ({counts}); cache {r.cache_path}")
    repo = push_to_hub or r.output.push_to_hub
    if repo:
        try:
            url = push(r.build_dir, repo, private=r.output.private)
        except PushError as exc:
            _fail(str(exc))
        reporter.info(f"Pushed to {url}")


@app.command()
def plan(recipe: Path = typer.Argument(...), set_: list[str] = SetOption) -> None:
    """Show, per stage, how many units are cached and how many a build would compute."""
    from steca_data.build.builder import Builder

    r = _recipe(recipe, set_)
    table = Table(title=f"plan for {r.name} (cache {r.cache_path})")
    for col in ("stage", "units", "cached", "to compute", "note"):
        table.add_column(col, justify="right" if col in ("units", "cached", "to compute") else "left")
    for p in Builder(r).plan():
        table.add_row(p.stage, str(p.total), str(p.cached), str(p.to_compute), p.note)
    out.print(table)


def _default_db() -> Path:
    candidates = sorted(Path("builds").glob("*/cache.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        _fail("no --db given and no builds/*/cache.duckdb here; pass --db PATH or --recipe RECIPE")
    err.print(f"[dim]using {candidates[0]}[/dim]")
    return candidates[0]


@app.command()
def sql(
    query: str = typer.Argument(..., help='SQL, e.g. "select source, count(*) from trajectories group by 1".'),
    db: Path | None = typer.Option(None, "--db", help="DuckDB cache file (default: newest builds/*/cache.duckdb)."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Use this recipe's cache."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
) -> None:
    """Query a build cache with SQL (read-only)."""
    import duckdb

    if fmt not in ("table", "csv", "json"):
        _fail(f"--format must be table, csv or json (got {fmt!r})", 2)
    path = db or (_recipe(recipe, []).cache_path if recipe else _default_db())
    if not path.exists():
        _fail(f"no cache at {path}")
    try:
        con = duckdb.connect(str(path), read_only=True)
        cur = con.execute(query)
    except duckdb.Error as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    if cur.description is None:
        return
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], default=str, indent=1))
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        table = Table()
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r))
        out.print(table)


@app.command()
def inspect(
    build_dir: Path = typer.Argument(..., help="A build directory (or its dataset/ folder)."),
    n: int = typer.Option(1, "--n", help="Sample rows to show per dataset."),
) -> None:
    """Print row counts per dataset and a sample conversation."""
    from datasets import load_from_disk

    path = build_dir / "dataset" if (build_dir / "dataset").is_dir() else build_dir
    if not path.is_dir():
        _fail(f"no dataset at {path}")
    dd = load_from_disk(str(path))
    table = Table(title=str(path))
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    table.add_column("columns")
    for name, ds in dd.items():
        table.add_row(name, str(len(ds)), ", ".join(ds.column_names))
    out.print(table)
    for name, ds in dd.items():
        for row in ds.select(range(min(n, len(ds)))):
            out.rule(f"{name} · {row['id']} · weight {row['reward_weight']:.3f}")
            for m in row["messages"]:
                if m["role"] == "system":
                    out.print(f"[dim]system: {m['content'][:200]}…[/dim]", highlight=False)
                    continue
                style = "bold green" if m["loss"] else ("cyan" if m["role"] == "assistant" else "")
                out.print(
                    f"[{style}]{m['role']}[/]: {m['content']}" if style else f"{m['role']}: {m['content']}",
                    highlight=False,
                )


@app.command()
def report(
    build_dir: Path = typer.Argument(..., help="A build directory (holding cache.duckdb)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for the plots (default <build>/report)."),
) -> None:
    """Plot step rewards vs steps remaining, deviation positions and dataset sizes."""
    from steca_data.build.report import write_report

    if not (build_dir / "cache.duckdb").is_file():
        _fail(f"no cache.duckdb in {build_dir}")
    summary = write_report(build_dir, out_dir)
    target = out_dir or build_dir / "report"
    for plot in summary["plots"]:
        out.print(f"wrote {target / plot}")
    if "step_reward_by_remaining" in summary:
        pairs = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(summary["step_reward_by_remaining"].items(), reverse=True))
        out.print(f"mean expert step reward by steps remaining: {pairs}")
    out.print(
        f"first deviations: {summary['first_deviations']} of {summary['walked_tasks']} walked tasks; "
        f"datasets: {summary['dataset_sizes']}"
    )


@app.command()
def bench(
    recipe: Path = typer.Argument(..., help="A recipe whose build (and warm-up model) exists."),
    tasks: int = typer.Option(8, "--tasks", help="Train tasks to roll out from."),
    n: int | None = typer.Option(None, "--n", help="Rollouts per task (default rollouts.n)."),
    model: str | None = typer.Option(None, "--model", help="Policy model (default: the recipe's base agent)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also run the one-at-a-time baseline."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures as JSON here."),
    set_: list[str] = SetOption,
) -> None:
    """Rollouts/s of the batched engine vs one rollout at a time, same policy and environment."""
    from steca_data.build.bench import BenchError, bench_table, run_bench

    r = _recipe(recipe, set_)
    try:
        figures, arms = run_bench(r, tasks, n, model, baseline)
    except BenchError as exc:
        _fail(str(exc).replace("RECIPE", str(recipe)))
    out.print(bench_table(figures, arms))
    out.print(
        "engine: every rollout advances in lock-step, one batched policy call per step; sequential: one "
        "rollout at a time, one policy call per step (same rollouts, seeds and policy)."
    )
    if "speedup" in figures:
        out.print(f"engine / sequential rollouts per second: [bold]{figures['speedup']:.2f}x[/bold]")
    if json_out:
        json_out.write_text(json.dumps(figures, indent=1))


@app.command()
def push(build_dir: Path, repo_id: str, public: bool = typer.Option(False, "--public")) -> None:
    """Push a finished build (parquet + card) to the Hugging Face Hub (needs HF_TOKEN)."""
    from steca_data.build.output import PushError, push_to_hub

    try:
        out.print(f"Pushed to {push_to_hub(build_dir, repo_id, private=not public)}")
    except PushError as exc:
        _fail(str(exc))


@schemas_app.command("export")
def schemas_export(out_dir: Path = typer.Option(None, "--out", help="Folder (default: the repo's schemas/).")) -> None:
    """Write the JSON Schema of every model to schemas/."""
    from steca_data.core.schema_io import REPO_SCHEMA_DIR, export_json_schemas

    for path in export_json_schemas(out_dir or REPO_SCHEMA_DIR):
        out.print(f"wrote {path}")


@schemas_app.command("check")
def schemas_check(out_dir: Path = typer.Option(None, "--out")) -> None:
    """Exit 1 when schemas/ differs from the models."""
    from steca_data.core.schema_io import REPO_SCHEMA_DIR, drifted_json_schemas

    drifted = drifted_json_schemas(out_dir or REPO_SCHEMA_DIR)
    if drifted:
        _fail(f"schemas drifted from the models: {', '.join(drifted)}; run `steca-data schemas export`")
    out.print("schemas up to date")


if __name__ == "__main__":
    app()
