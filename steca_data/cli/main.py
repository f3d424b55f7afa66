"""``steca-data``: build, plan, query, inspect and publish step-level agent datasets.

Add --debug (anywhere) to see tracebacks; errors are otherwise one line (exit 2: bad input, 1: failure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from steca_data.cli.common import DEBUG_FLAG, entry_point, err, log_progress, say
from steca_data.cli.common import fail as _fail
from steca_data.cli.common import recipe_or_exit as _recipe
from steca_data.cli.doctor import doctor_command
from steca_data.cli.export import export_command
from steca_data.cli.signals import Interrupted, received
from steca_data.envs.registry import plugin, plugin_names

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
schemas_app = typer.Typer(no_args_is_help=True, help="JSON Schemas of every stored and emitted model.")
app.add_typer(schemas_app, name="schemas")
app.command("export")(export_command)
app.command("doctor")(doctor_command)
for _env in plugin_names():  # env-specific commands, e.g. a game generator
    plugin(_env).register_cli(app)

out = Console()

BENCH_SIGNATURE = ("arms", "policy_id", "ratio")  # what a file --json may replace holds (an earlier bench's)
SetOption = typer.Option([], "--set", help="Override a recipe field: --set env.max_steps=40 (repeatable).")


@app.callback()
def _options(
    debug: bool = typer.Option(False, DEBUG_FLAG, help="Show tracebacks (also accepted after the command)."),
) -> None:
    """Global options (``--debug`` is handled by the entry point before the command runs)."""


def _build_summary(reporter, summary, r) -> None:
    for res in summary.results:
        took = f" in {res.seconds:.1f} s" if res.computed or res.failed else ""
        if res.seconds >= 5 and res.stolen is not None and res.stolen >= 0.05:  # the machine was slow
            took += f" ({res.stolen:.0%} of the CPU taken by other tenants of this VM)"
        reporter.info(escape(f"{res.stage}: {res.computed} computed, {res.cached} cached{took}"))
    for line in summary.failure_lines():
        reporter.info(f"[yellow]{escape(line)}[/yellow] (the next build retries them; see the failures table)")
    o = summary.output
    if summary.computed == 0 and o is not None and not o.written:
        reporter.info(
            f"[green]Nothing to do:[/green] all {summary.cached} units cached and outputs up to date "
            f"({escape(str(r.build_dir))})."
        )
    else:
        counts = ", ".join(f"{k}={v}" for k, v in (o.counts if o else {}).items())
        reporter.info(f"[green]Built[/green] {escape(str(r.build_dir))} ({counts}); cache {escape(str(r.cache_path))}")


def _check_build_dir(r, recipe: Path) -> None:
    """``output.dir`` under the output-path policy: a new or empty folder, or a build; ``output.cache`` a file."""
    from steca_data.core.outputs import OutputPathError, check_build_output

    try:
        check_build_output(r.build_dir, r.output.cache, str(recipe), r.name)
    except OutputPathError as exc:
        _fail(str(exc), 2)


def _check_repo_id(repo: str) -> None:
    """A Hub repo id that cannot exist is the user's input: exit 2 before any work (and before any network)."""
    from steca_data.build.output import repo_id_problem

    problem = repo_id_problem(repo)
    if problem:
        _fail(problem, 2)


def _units_kept(builder) -> str:
    """How many units the cache holds now (the next build skips them); counted without starting anything."""
    try:
        kept = sum(p.cached for p in builder.plan())
        return f"{kept} unit{'s' if kept != 1 else ''} kept"
    except Exception:  # noqa: BLE001 - a damaged or locked cache: the line still says what to do
        return "everything stored so far is kept"


@app.command()
def build(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    set_: list[str] = SetOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log lines instead of progress bars."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="Hub dataset repo to push to afterwards."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Retry failed units even when the recipe says failures.retry: false."
    ),
) -> None:
    """Build the recipe's datasets, computing only what the cache lacks (and what failed last time)."""
    from steca_data.build.builder import Builder
    from steca_data.build.output import PushError
    from steca_data.build.output import push_to_hub as push
    from steca_data.core.failures import BuildFailed
    from steca_data.core.progress import Reporter

    r = _recipe(recipe, set_)
    _check_build_dir(r, recipe)
    repo = push_to_hub or r.output.push_to_hub
    if repo:
        _check_repo_id(repo)
    log_progress(quiet)
    reporter = Reporter(quiet=quiet, console=err)
    builder = Builder(r, reporter, retry_failed=retry_failed)
    try:
        summary = builder.build()
    except BuildFailed as exc:
        _fail(f"{exc}; `steca-data plan {recipe}` shows what is missing")
    except BaseException as exc:  # Ctrl-C, or what a dying simulator's cleanup raised on top of it
        if received() is None and not isinstance(exc, KeyboardInterrupt):
            raise
        raise Interrupted(f"interrupted: {_units_kept(builder)}; run the same command to resume") from exc
    _build_summary(reporter, summary, r)
    if repo:
        try:
            url = push(r.build_dir, repo, private=r.output.private)
        except PushError as exc:
            _fail(str(exc))
        reporter.info(f"Pushed to {escape(url)}")


@app.command()
def plan(recipe: Path = typer.Argument(...), set_: list[str] = SetOption) -> None:
    """Show, per stage, how many units are cached, failed last time, and would be computed."""
    from steca_data.build.builder import Builder

    r = _recipe(recipe, set_)
    table = Table(title=Text(f"plan for {r.name} (cache {r.cache_path})"))
    numeric = ("units", "cached", "failed", "to compute")
    for col in ("stage", *numeric, "note"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for p in Builder(r).plan():
        table.add_row(p.stage, str(p.total), str(p.cached), str(p.failed), str(p.to_compute), Text(p.note))
    out.print(table)
    _print_task_notes(r)


def _print_task_notes(r) -> None:
    """Splits whose block lists fewer runnable tasks than it names say so (never silently fewer)."""
    from steca_data.envs.registry import task_notes

    for split_name in r.env.splits:
        notes = task_notes(r.env, split_name)
        if notes:
            out.print(Text(f"{split_name}: {notes['summary']}"), soft_wrap=True)


def _default_db() -> Path:
    candidates = sorted(Path("builds").glob("*/cache.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        _fail("no --db given and no builds/*/cache.duckdb here; pass --db PATH or --recipe RECIPE", 2)
    say(f"using {candidates[0]}", "dim", "note")
    return candidates[0]


def _print_rows(cols: list[str], rows: list[tuple], fmt: str) -> None:
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
            table.add_column(Text(c))
        for r in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in r))  # data, never markup
        out.print(table)


@app.command()
def sql(
    query: str = typer.Argument(..., help='SQL, e.g. "select source, count(*) from trajectories group by 1".'),
    db: Path | None = typer.Option(None, "--db", help="DuckDB cache file (default: newest builds/*/cache.duckdb)."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Use this recipe's cache."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json"),
) -> None:
    """Query a build cache with SQL. Read-only in effect: no statement writes files, attaches databases,
    loads extensions or changes settings."""
    import duckdb

    from steca_data.cache.query import connect_read_only, statement_problem

    if fmt not in ("table", "csv", "json"):
        _fail(f"--format must be table, csv or json (got {fmt!r})", 2)
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        _fail(f"sql: the query is not UTF-8 text (byte {exc.object[exc.start].encode('utf-8', 'surrogateescape')!r} "
              f"at position {exc.start}); check your terminal's encoding", 2)  # fmt: skip
    problem = statement_problem(query)
    if problem:
        _fail(f"sql: {problem}", 2)
    path = db or (_recipe(recipe, []).cache_path if recipe else _default_db())
    if path.is_dir() and (path / "cache.duckdb").is_file():  # --db builds/x: that build's cache
        path = path / "cache.duckdb"
    if not path.is_file():
        _fail(f"no cache at {path}" + (" (a directory)" if path.is_dir() else ""), 2)
    con = connect_read_only(path)
    try:
        cols, rows = _run_interruptibly(con, query)
    except duckdb.Error as exc:
        _fail(" ".join(f"{type(exc).__name__}: {exc}".split()))
    finally:
        con.close()
    if cols:
        _print_rows(cols, rows, fmt)


def _run_interruptibly(con, query: str) -> tuple[list[str], list[tuple]]:
    """The query on a worker thread while the main thread waits in Python: a Ctrl-C always reaches the main
    thread (a signal handler cannot run while the main thread is inside DuckDB), which then interrupts DuckDB."""
    from concurrent.futures import ThreadPoolExecutor, wait

    def run() -> tuple[list[str], list[tuple]]:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, (cur.fetchall() if cols else [])

    pool = ThreadPoolExecutor(1, thread_name_prefix="sql")
    future = pool.submit(run)
    try:
        while not future.done():
            wait([future], timeout=0.2)
        return future.result()
    except BaseException:
        con.interrupt()  # the query stops at its next check; the caller closes the connection
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dataset_dir(build_dir: Path) -> tuple[Path, Path | None]:
    """(the dataset folder, the build folder holding its parquet and card, if any); exit 2 if neither."""
    if (build_dir / "dataset" / "dataset_dict.json").is_file():
        return build_dir / "dataset", build_dir
    if (build_dir / "dataset_dict.json").is_file():
        parent = build_dir.parent if build_dir.name == "dataset" else None
        return build_dir, parent
    what = "does not exist" if not build_dir.exists() else "is not a build directory (no dataset/dataset_dict.json)"
    _fail(f"{build_dir} {what}; pass a build directory such as builds/quickstart", 2)


def _show_rows(dd, n: int) -> None:
    for name, ds in dd.items():
        for row in ds.select(range(min(n, len(ds)))):
            out.rule(Text(f"{name} · {row['id']} · weight {row['reward_weight']:.3f}"))
            for m in row["messages"]:
                if m["role"] == "system":
                    out.print(Text(f"system: {m['content'][:200]}…", style="dim"))
                    continue
                style = "bold green" if m["loss"] else ("cyan" if m["role"] == "assistant" else "")
                out.print(Text.assemble((m["role"], style), f": {m['content']}"))


@app.command()
def inspect(
    build_dir: Path = typer.Argument(..., help="A build directory (or its dataset/ folder)."),
    n: int = typer.Option(1, "--n", min=0, help="Sample rows to show per dataset."),
) -> None:
    """Print row counts per dataset and a sample conversation; exit 1 when dataset, parquet and card disagree."""
    from datasets import load_from_disk

    from steca_data.build.verify import output_problem
    from steca_data.core.damage import reading

    path, build = _dataset_dir(build_dir)
    with reading(path, "the saved dataset", "rebuild it (`steca-data build`) or copy the build again"):
        dd = load_from_disk(str(path))
    table = Table(title=Text(str(path)))
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    table.add_column("columns")
    for name, ds in dd.items():
        table.add_row(Text(name), str(len(ds)), Text(", ".join(ds.column_names)))
    out.print(table)
    _show_rows(dd, n)
    problem = output_problem(build, dd) if build is not None else None
    if problem:
        _fail(f"{build}: outputs disagree: {problem}")


@app.command()
def report(
    build_dir: Path = typer.Argument(..., help="A build directory (holding cache.duckdb)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for the plots (default <build>/report)."),
) -> None:
    """Plot step rewards vs steps remaining, deviation positions, dataset sizes and (with planner labels) the
    deviation rule's precision / recall / F1."""
    from steca_data.build.report import write_report
    from steca_data.core.outputs import check_output_dir

    if not (build_dir / "cache.duckdb").is_file():
        _fail(f"no cache.duckdb in {build_dir}", 2)
    target = check_output_dir(out_dir if out_dir is not None else build_dir / "report", "report",
                              sources=[build_dir])  # fmt: skip
    summary = write_report(build_dir, target)
    for plot in summary["plots"]:
        out.print(Text(f"wrote {target / plot}"))
    if "step_reward_by_remaining" in summary:
        pairs = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(summary["step_reward_by_remaining"].items(), reverse=True))
        out.print(Text(f"mean expert step reward by steps remaining: {pairs}"))
        scored, listed = summary["expert_prefixes_scored"]
        if scored < listed:
            out.print(
                Text(
                    f"  from {scored} of {listed} expert prefixes (rollouts.scope: first_deviation scores only "
                    "those before each first deviation): a biased curve; build with rollouts.scope: all for it"
                )
            )
    out.print(
        Text(
            f"first deviations: {summary['first_deviations']} of {summary['walked_tasks']} walked tasks; "
            f"datasets: {summary['dataset_sizes']}"
        )
    )
    if "detector" in summary:
        _print_detector(summary["detector"])


def _print_detector(detector: dict) -> None:
    """The deviation rule against the planner's labels: one line per rollouts n, then the delta sweep."""

    def fmt(x: float | None) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    out.print(
        Text(
            f"deviation rule vs planner labels: {detector['judged']} judged proposals, {detector['bad']} detour or "
            f"dead end (flagging all of them: F1 {fmt(detector['flag_all_f1'])}); precision / recall / F1"
        )
    )
    for row in detector["by_n"]:
        label = f"  n={row['n']:<3} delta={row['delta']:g}"
        out.print(Text(f"{label:<22} {fmt(row['precision'])} / {fmt(row['recall'])} / {fmt(row['f1'])}"))
    for row in detector["by_delta"]:
        label = f"  delta={row['delta']:<5g} n={row['n']}"
        out.print(Text(f"{label:<22} {fmt(row['precision'])} / {fmt(row['recall'])} / {fmt(row['f1'])}"))


@app.command()
def bench(
    recipe: Path = typer.Argument(..., help="A recipe whose build (and warm-up model) exists."),
    tasks: int = typer.Option(64, "--tasks", min=1, help="Train tasks to roll out from (x --n in flight)."),
    n: int = typer.Option(4, "--n", min=1, help="Rollouts per task."),
    reference_every: int | None = typer.Option(
        None, "--reference-every", min=1, help="The reference plays every K-th rollout (default: --n, one per task)."
    ),
    model: str | None = typer.Option(None, "--model", help="Policy model (default: the recipe's base agent)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the figures as JSON here."),
    scaling: bool = typer.Option(
        False, "--scaling", help="Instead: environment-bound episodes/s, 1 process vs --workers Ray workers."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes of the --scaling arm."),
    peers: bool = typer.Option(
        False, "--peers", help="Add the peers' arm: the model served over HTTP, 32 concurrent episode clients."
    ),
    set_: list[str] = SetOption,
) -> None:
    """Rollouts/s: the engine (continuous), the same backend in lock-step, and the sequential reference."""
    from steca_data.build.bench import BenchError, bench_table, run_bench
    from steca_data.core.outputs import check_output_file, write_file_atomically

    r = _recipe(recipe, set_)
    if json_out is not None:
        json_out = check_output_file(json_out, BENCH_SIGNATURE, what="--json")
    if model is not None and r.policy.backend != "openai" and not (Path(model) / "config.json").is_file():
        _fail(f"--model {model!r}: not a model directory (no config.json); omit it to use the build's base agent", 2)
    if scaling:
        from steca_data.build.scaling import run_scaling, scaling_lines

        figures = run_scaling(r, tasks, n, workers)
        for line in scaling_lines(figures):
            typer.echo(line)
        if json_out:
            write_file_atomically(json_out, json.dumps(figures, indent=1))
        typer.echo(f"scaling: {figures['ratio']:.2f}")
        return
    try:
        figures, arms = run_bench(r, tasks, n, model, reference_every, peers)
    except BenchError as exc:  # no build or no base agent yet: nothing was done
        _fail(str(exc).replace("RECIPE", str(recipe)), 2)
    shown = out if out.is_terminal else Console(width=132)  # in logs: a table wide enough for its headers
    shown.print(bench_table(figures, arms))
    shown.print(
        "engine: the recipe's backend, each episode's next request joins the running batch as soon as its "
        "environment step returns; lockstep: the same backend, one batch per step; reference: transformers, "
        f"one rollout at a time, one request per step, on one in {figures['reference_every']} of the same "
        "rollouts (sequential: its rate does not depend on how many). Same seeds and weights; 'in policy' and "
        "'in env' overlap under the continuous schedule. 'cpu stolen': the share of this machine's CPU time "
        "that the hypervisor gave to other tenants during the arm (ratios between arms that differ in it are "
        "skewed by that much)."
    )
    stolen = [a.stolen for a in arms if a.stolen is not None]
    if stolen and max(stolen) - min(stolen) > 0.05:
        shown.print(
            f"[yellow]note:[/] CPU steal differed between arms ({min(stolen):.0%}-{max(stolen):.0%}): "
            "the ratio is skewed by the machine, not only the engine; run the bench again"
        )
    if json_out:
        write_file_atomically(json_out, json.dumps(figures, indent=1))
    if peers:
        typer.echo(f"engine/peers: {figures['engine_vs_peers']:.2f}")
    typer.echo(f"ratio: {figures['ratio']:.2f}")


@app.command()
def push(build_dir: Path, repo_id: str, public: bool = typer.Option(False, "--public")) -> None:
    """Push a finished build (parquet + card) to the Hugging Face Hub (needs HF_TOKEN)."""
    from steca_data.build.output import PushError, push_to_hub

    if not (build_dir / "parquet").is_dir():
        _fail(f"{build_dir} is not a build directory with parquet/ (build it first)", 2)
    _check_repo_id(repo_id)
    try:
        out.print(Text(f"Pushed to {push_to_hub(build_dir, repo_id, private=not public)}"))
    except PushError as exc:
        _fail(str(exc))


@schemas_app.command("export")
def schemas_export(out_dir: Path = typer.Option(None, "--out", help="Folder (default: the repo's schemas/).")) -> None:
    """Write the JSON Schema of every model to schemas/."""
    from steca_data.core.outputs import check_output_dir
    from steca_data.core.schema_io import REPO_SCHEMA_DIR, export_json_schemas

    target = REPO_SCHEMA_DIR if out_dir is None else check_output_dir(out_dir, "schemas")
    for path in export_json_schemas(target):
        out.print(Text(f"wrote {path}"))


@schemas_app.command("check")
def schemas_check(out_dir: Path = typer.Option(None, "--out")) -> None:
    """Exit 1 when schemas/ differs from the models."""
    from steca_data.core.schema_io import REPO_SCHEMA_DIR, drifted_json_schemas

    drifted = drifted_json_schemas(out_dir or REPO_SCHEMA_DIR)
    if drifted:
        _fail(f"schemas drifted from the models: {', '.join(drifted)}; run `steca-data schemas export`")
    out.print("schemas up to date")


def main() -> None:
    """The ``steca-data`` console script: the app under the one error policy (``cli.common.run_app``)."""
    entry_point(app, "steca-data")


if __name__ == "__main__":
    main()
