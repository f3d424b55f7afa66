"""``steca-train methods``, ``reinforce`` and ``experiment`` (registered on the ``steca-train`` app)."""

from __future__ import annotations

from pathlib import Path

import typer

from steca_data.cli.common import err, reporter
from steca_data.cli.common import fail as _fail
from steca_data.cli.common import recipe_or_exit as _recipe
from steca_data.core.outputs import check_build_output, check_output_dir
from steca_data.policies.weights import check_model_dir
from steca_data.training.quiet import quiet_transformers as _quiet_hf

QUIET_HELP = "Log lines instead of progress bars (for logs and CI)."
SetOption = typer.Option([], "--set", help="Override a recipe field: --set reinforce.lr=1e-3 (repeatable).")


METHOD_HELP = "A method of `steca-train methods` (the DPO ones start from --model, default the base agent)."


def methods_cmd() -> None:
    """List the training methods: name, trainer, what each starts from, and one line about it."""
    from rich.console import Console
    from rich.table import Table

    from steca_train.methods import method, method_names

    table = Table(title="steca-train methods")
    for col in ("method", "trainer", "starts from", "description"):
        table.add_column(col)
    for name in method_names():
        m = method(name)
        table.add_row(name, m.trainer, m.starts_from or ("-" if not m.trains else "base agent"), m.description)
    Console(width=max(140, Console().width)).print(table)


def reinforce_cmd(
    data: Path = typer.Option(..., "--data", help="Build dir of `steca-data build` (holds dataset/ and recipe.yaml)."),
    method_name: str = typer.Option(..., "--method", help=METHOD_HELP),
    model: Path | None = typer.Option(None, "--model", help="Model to start from (default: the build's base agent)."),
    recipe: Path | None = typer.Option(
        None, "--recipe", "-r", help="Recipe for the training settings (default: the build's own recipe.yaml)."
    ),  # fmt: skip
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: <data>/models/<method>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    set_: list[str] = SetOption,
) -> None:
    """Train one method on a build directory, from its base agent (the build is read alone: it may have moved)."""
    from steca_data.export.build_dir import BuildDir, ExportError
    from steca_train.methods import check_methods, method, method_names

    if method_name not in method_names():
        _fail(f"--method: unknown method {method_name!r} (known: {', '.join(method_names())})", 2)
    try:
        build = BuildDir.open(data, set_)
    except ExportError as exc:
        _fail(f"--data {exc}", 2)
    r = _recipe(recipe, set_) if recipe else build.recipe
    problem = check_methods(r, [method_name], where="--method")
    if problem:
        _fail(problem, 2)
    m = method(method_name)
    if not m.trains:
        _fail(f"--method {method_name}: the base agent is the build's own (its warm-up); nothing to train", 2)
    agent = build.base_agent()
    base = Path(agent[1]) if agent and agent[1] else None
    init = model if model is not None else base
    if init is None or not str(init).strip() or not (init / "config.json").is_file():
        _fail(f"--model {init}: not a model directory (the build names no local base agent; pass --model)", 2)
    target = check_output_dir(out if out is not None else data / "models" / method_name, "model", sources=[init, data])
    check_model_dir(init)
    _quiet_hf()
    from steca_data.training.distributed import is_main_process
    from steca_train.methods.base import MethodRun

    run = MethodRun(recipe=r, build=build, init=init, base=base or init, out=target,
                    scratch=target.with_name(target.name + ".rounds"), seed=r.reinforce.seed,
                    reporter=reporter(quiet), options=m.options(r))  # fmt: skip
    try:
        info = m.train(run)
    except (KeyError, ValueError, FileNotFoundError, ExportError) as exc:
        _fail(str(exc).strip("'\""))
    finally:
        build.close()
    if not is_main_process():  # under torchrun rank 0 alone reports
        return
    for name, w in (info.get("weights") or {}).items():
        err.print(f"{name}: {w['rows']} rows, weight mean {w['mean']:.3f} [{w['min']:.3f}, {w['max']:.3f}]")
    size = f"{info['rows']} rows" if "rows" in info else f"{info.get('pairs', 0)} pairs"
    err.print(
        f"[green]trained[/green] {method_name}: {size}, {info['steps']} steps in {info['train_seconds']:.0f}s"
        + (f", final loss {info['final_loss']:.3f}" if info.get("final_loss") is not None else "")
        + f" → {target}"
    )


def experiment_cmd(
    recipe: Path = typer.Argument(..., help="Experiment recipe (a recipe with datasets expert, dc, de, ds)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    set_: list[str] = SetOption,
) -> None:
    """warm-up → build → each method → eval on seen/unseen, per seed; table + plots (cached, resumable)."""

    from steca_data.training.distributed import launched_processes

    if launched_processes() > 1:
        _fail("steca-train experiment builds, evaluates and trains every method in one process, not under "
              "torchrun: launch it plainly; to train one method on several processes: torchrun ... steca-train "
              "reinforce --method <method>", 2)  # fmt: skip
    r = _recipe(recipe, set_)
    from steca_train.methods import check_methods

    problem = check_methods(r)
    if problem:
        _fail(f"{recipe}: {problem}", 2)
    _quiet_hf()
    from steca_train.experiment import experiment_dir, results_path, run_experiment, seed_groups

    for built, _ in seed_groups(r):  # one build, or one per seed (experiment.seed_scope: all)
        check_build_output(built.build_dir, built.output.cache, str(recipe), r.name)
    check_output_dir(experiment_dir(r), "experiment", what=f"{recipe}: experiment.out")

    try:  # --quiet: progress as log lines (the root logger's level is raised to INFO, as for `build --quiet`)
        doc = run_experiment(r, reporter(quiet))
    except ValueError as exc:
        _fail(str(exc), 2)
    from steca_train.report import markdown

    typer.echo(markdown(doc))
    out = experiment_dir(r)
    err.print(f"[green]results[/green] {out}/results.md, results.json, methods.png, calibration.png, losses.png")
    err.print(f"[green]table[/green] {results_path(r)}")
