"""``steca-train reinforce`` and ``steca-train experiment`` (registered on the ``steca-train`` app)."""

from __future__ import annotations

from pathlib import Path

import typer

from steca_data.cli.common import err
from steca_data.cli.common import fail as _fail
from steca_data.cli.common import recipe_or_exit as _recipe
from steca_data.core.damage import reading
from steca_data.core.outputs import check_build_output, check_output_dir
from steca_data.policies.weights import check_model_dir
from steca_data.training.quiet import quiet_transformers as _quiet_hf

QUIET_HELP = "Log lines instead of progress bars (for logs and CI)."
SetOption = typer.Option([], "--set", help="Override a recipe field: --set reinforce.lr=1e-3 (repeatable).")


METHOD_HELP = "steca (reward-weighted) | steca-sft (weights 1) | rft (expert ∪ De) | steca-dpo (steca-sft + DPO)."


def warmup_model(recipe) -> Path | None:
    """The base agent a build made for itself (its warm-up), or the recipe's own model; None if not built."""
    from steca_data.build.builder import open_build
    from steca_data.stages.agent import AgentHandle

    if recipe.policy.model:
        return Path(recipe.policy.model)
    if not recipe.cache_path.is_file():
        return None
    with open_build(recipe) as ctx:
        agent = ctx.find(AgentHandle)
    return Path(agent.model) if agent else None


def reinforce_cmd(
    data: Path = typer.Option(..., "--data", help="Build dir of `steca-data build` (holds dataset/ and recipe.yaml)."),
    model: Path | None = typer.Option(None, "--model", help="Base agent to start from (default: the build's warm-up)."),
    recipe: Path | None = typer.Option(None, "--recipe", "-r", help="Recipe YAML (default: <data>/recipe.yaml)."),
    method: str = typer.Option("steca", "--method", help=METHOD_HELP),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: <data>/models/<method>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    set_: list[str] = SetOption,
) -> None:
    """STeCa's reinforced training: reward-weighted NLL over Dc ∪ De ∪ Ds (or a baseline), one epoch."""
    from steca_train.reinforce import OBJECTIVES, Objective

    if method not in (*OBJECTIVES, "steca-dpo"):
        _fail(f"--method must be one of {', '.join((*OBJECTIVES, 'steca-dpo'))} (got {method!r})", 2)
    recipe_path = recipe or data / "recipe.yaml"
    if not recipe_path.is_file():
        _fail(f"no recipe at {recipe_path}: pass --recipe or point --data at a build dir", 2)
    r = _recipe(recipe_path, set_)
    data_dir = data / "dataset" if (data / "dataset").is_dir() else data
    if not (data_dir / "dataset_dict.json").is_file():
        _fail(f"no built datasets at {data_dir}: run `steca-data build {recipe_path}` first", 2)
    init = model if model is not None else warmup_model(r)
    if init is None or not str(init).strip() or not (init / "config.json").is_file():
        _fail(f"--model {init}: not a model directory (the build has no warm-up model; pass --model)", 2)
    target = check_output_dir(out if out is not None else data / "models" / method, "model", sources=[init, data_dir])
    check_model_dir(init)
    _quiet_hf()
    from steca_data.core.progress import Reporter
    from steca_data.training.data import load_rows
    from steca_train.reinforce import train_objective, weight_summary

    spec = r.reinforce
    try:
        if method == "steca-dpo":
            from steca_train.dpo import preference_pairs, train_dpo

            with reading(data_dir, "the built dataset", "build it again"):
                rows = load_rows(data_dir, ["dc"])
            pairs = preference_pairs(rows, data / "cache.duckdb", r.prompt.history, spec.dpo.max_turns)
            err.print(f"{len(pairs)} preference pairs (calibrated vs deviated) from {data_dir}")
            log = train_dpo(spec.dpo, init, pairs, target, seed=spec.seed, threads=spec.threads)
            err.print(f"[green]trained[/green] DPO {log['steps']} steps in {log['seconds']:.0f}s → {target}")
            return
        objective = OBJECTIVES[method]
        if method == "steca":  # the recipe may narrow the sets or switch weights off
            objective = Objective(tuple(spec.datasets), spec.weighted)
        with reading(data_dir, "the built dataset", "build it again"):
            rows = load_rows(data_dir, list(objective.datasets))
        rows = rows if objective.weighted else [{**x, "reward_weight": 1.0} for x in rows]
        for name, w in weight_summary(rows).items():
            err.print(f"{name}: {w['rows']} rows, weight mean {w['mean']:.3f} [{w['min']:.3f}, {w['max']:.3f}]")
        with Reporter(quiet=quiet, console=err).track(method, 1, "runs") as advance:
            result = train_objective(spec, init, rows, target, r.prompt.history)
            advance()
    except (KeyError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc).strip("'\""))
    err.print(
        f"[green]trained[/green] {method}: {result.steps} steps in {result.seconds:.0f}s, "
        f"final loss {result.final_loss:.3f} → {target}"
    )


def experiment_cmd(
    recipe: Path = typer.Argument(..., help="Experiment recipe (a recipe with datasets expert, dc, de, ds)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    set_: list[str] = SetOption,
) -> None:
    """warm-up → build → each method → eval on seen/unseen, per seed; table + plots (cached, resumable)."""
    import logging
    import sys

    r = _recipe(recipe, set_)
    _quiet_hf()
    from steca_data.core.progress import Reporter
    from steca_train.experiment import experiment_dir, run_experiment

    check_build_output(r.build_dir, r.output.cache, str(recipe), r.name)
    check_output_dir(experiment_dir(r), "experiment", what=f"{recipe}: experiment.out")

    if quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        doc = run_experiment(r, Reporter(quiet=quiet, console=err))
    except ValueError as exc:
        _fail(str(exc), 2)
    from steca_train.report import markdown

    typer.echo(markdown(doc))
    out = experiment_dir(r)
    err.print(f"[green]results[/green] {out}/results.md, results.json, methods.png, calibration.png, losses.png")
