"""``steca-train``: make a tiny model, fine-tune it on steca-data builds, and evaluate agents."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from steca_data.cli.common import DEBUG_FLAG, entry_point, err
from steca_data.cli.common import fail as _fail
from steca_data.cli.common import recipe_or_exit as _recipe
from steca_data.cli.common import reporter as _reporter
from steca_data.cli.signals import Interrupted
from steca_data.core.damage import reading
from steca_data.core.outputs import check_output_dir, check_output_file, write_file_atomically
from steca_data.policies.weights import check_model_dir
from steca_data.training.quiet import quiet_transformers as _quiet_hf

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.callback()
def _options(
    debug: bool = typer.Option(False, DEBUG_FLAG, help="Show tracebacks (also accepted after the command)."),
) -> None:
    """Global options (``--debug`` is handled by the entry point before the command runs)."""


EVAL_SIGNATURE = ("policy_id", "prompt_version", "results")  # what an existing --out file must hold to be replaced
RecipeOption = typer.Option(..., "--recipe", "-r", help="Recipe YAML file.")
SetOption = typer.Option([], "--set", help="Override a recipe field: --set sft.lr=1e-3 (repeatable).")
QuietOption = typer.Option(False, "--quiet", "-q", help="Log lines instead of progress bars (for logs and CI).")


def _paths(r):
    from steca_train.paths import RecipePaths

    return RecipePaths(r)


def _recipe_and_paths(recipe: Path, set_: list[str]):
    """The validated recipe (or exit 2) and where its build keeps data and models; HF logging quieted."""
    r = _recipe(recipe, set_)
    _quiet_hf()
    return r, _paths(r)


@app.command()
def version() -> None:
    """Print the version."""
    from steca_data import __version__

    typer.echo(__version__)


@app.command("init-model")
def init_model_cmd(
    recipe: Path = RecipeOption,
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: model.out or <build>/models/init)."),
    set_: list[str] = SetOption,
) -> None:
    """Train a byte-level BPE tokenizer on the built corpus and write a tiny Llama sized by `model:`."""
    r, paths = _recipe_and_paths(recipe, set_)
    from steca_data.training.init_model import corpus_texts, init_model

    target = check_output_dir(out if out is not None else paths.init_model, "model", sources=[paths.dataset])
    if not (paths.dataset / "dataset_dict.json").is_file():
        _fail(f"no built dataset at {paths.dataset}: run `steca-data build {recipe}` first", 2)
    with reading(paths.dataset, "the built dataset", f"build it again (`steca-data build {recipe}`)"):
        texts = corpus_texts(paths.dataset, r.sft.datasets)
    try:
        vocab, n_params = init_model(r.model, texts, target)
    except ValueError as exc:
        _fail(str(exc))
    err.print(f"[green]wrote[/green] {escape(str(target))}: vocab {vocab}, {n_params / 1e6:.2f} M parameters")


@app.command()
def sft(
    recipe: Path = RecipeOption,
    model: Path | None = typer.Option(None, "--model", help="Start from this model (default: sft.init / model.*)."),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: sft.out or <build>/models/sft)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoint."),
    quiet: bool = QuietOption,
    set_: list[str] = SetOption,
) -> None:
    """Supervised fine-tuning (weighted NLL on assistant turns) on the recipe's built datasets."""
    r, paths = _recipe_and_paths(recipe, set_)
    from steca_data.training.data import load_rows
    from steca_data.training.distributed import is_main_process
    from steca_data.training.fit import fit

    init = model if model is not None else paths.sft_init
    if not str(init).strip() or not (init / "config.json").is_file():
        what = "--model" if model is not None else "no model at"
        _fail(f"{what} {init}: not a model directory (no config.json); run `steca-train init-model --recipe "
              f"{recipe}` or pass --model", 2)  # fmt: skip
    target = check_output_dir(out if out is not None else paths.sft_out, "model", sources=[init, paths.sft_data])
    if resume:
        from steca_data.training.checkpoint import read_state

        try:
            read_state(target / "checkpoint", resume=True)
        except FileNotFoundError as exc:
            _fail(f"{exc} (nothing to continue; run without --resume)" if "no checkpoint" in str(exc) else str(exc), 2)
    check_model_dir(init)
    data = paths.sft_data
    try:
        with reading(data, "the built dataset", f"build it again (`steca-data build {recipe}`)"):
            rows = load_rows(data, r.sft.datasets)
    except (FileNotFoundError, KeyError) as exc:
        _fail(str(exc).strip("'\""), 2)
    try:
        run = fit(r.sft, init, rows, target, r.prompt.history, _reporter(quiet), "sft", resume=resume)
    except ValueError as exc:
        _fail(f"{data} ({', '.join(r.sft.datasets)}): {exc}")
    except KeyboardInterrupt as exc:
        raise Interrupted(_training_interrupted(target)) from exc
    result, n_steps = run.result, run.planned_steps
    if not is_main_process():  # under torchrun rank 0 alone reports
        return
    err.print(
        f"{len(rows)} rows → {run.windows} windows, {run.tokens} tokens"
        + (f" ({run.truncated} cut to {r.sft.max_seq_len} tokens)" if run.truncated else "")
    )
    err.print(
        f"[green]trained[/green] {result.steps} steps in {result.seconds:.0f}s "
        f"({result.tokens / max(result.seconds, 1e-9):.0f} tok/s), final loss {result.final_loss:.3f} "
        f"→ {escape(str(target))}"
        + (
            f" [yellow](stopped at sft.time_budget_s: {result.steps} of {n_steps} planned steps)[/yellow]"
            if result.stopped_early
            else ""
        )
    )


def _training_interrupted(target: Path) -> str:
    from steca_data.training.checkpoint import STATE, find

    found = find(target / "checkpoint")
    if found is not None:
        import json

        step = json.loads((found / STATE).read_text()).get("step", "?")
        return f"interrupted: {target / 'checkpoint'} holds step {step}; add --resume to the same command to go on"
    return "interrupted before the first checkpoint; run the same command to start again"


@app.command("eval")
def eval_cmd(
    recipe: Path = RecipeOption,
    model: str | None = typer.Option(None, "--model", help="Model dir (or served name for policy.backend openai)."),
    split: str = typer.Option("all", "--split", help="seen | unseen | all (eval.splits) | any split of the recipe."),
    samples: int | None = typer.Option(
        None, "--samples", min=0, max=1000, help="Sampled episodes per task (default eval.samples)."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", max=2.0, help="Sampling temperature, > 0 (default eval.temperature)."
    ),
    greedy: bool | None = typer.Option(None, "--greedy/--no-greedy", help="Also run greedy (default eval.greedy)."),
    policy: str | None = typer.Option(None, "--policy", help="random: the uniform-admissible-action floor."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="First N tasks of each split, N >= 1 (default eval.limit)."
    ),
    out: Path | None = typer.Option(None, "--out", help="JSON report path (default <model or build>/eval/...)."),
    quiet: bool = QuietOption,
    set_: list[str] = SetOption,
) -> None:
    """Play held-out tasks; report average final reward and success (95 % CIs); store every episode."""
    import json
    import time

    if temperature is not None and temperature <= 0:
        _fail(f"--temperature must be > 0 (got {temperature}); greedy decoding is --greedy", 2)
    r = _recipe(recipe, set_)
    if policy not in (None, "random"):
        _fail(f"--policy must be 'random' (got {policy!r}); models are chosen with --model / policy.backend", 2)
    spec = r.policy.model_copy(update={"backend": "random"}) if policy == "random" else r.policy
    if model is not None and not model.strip():
        _fail("--model: empty; name a model directory (or a served model for policy.backend openai)", 2)
    name = model or spec.model
    if spec.backend in ("transformers", "vllm"):
        name = name or str(_paths(r).sft_out)
        if not (Path(name) / "config.json").is_file() and not (Path(name) / "adapter_config.json").is_file():
            _fail(f"--model {name}: not a model directory (train one with `steca-train sft` or pass --model)", 2)
    if out is None:
        base = Path(name) / "eval" if spec.backend in ("transformers", "vllm") else _paths(r).eval_dir
        out = base / f"{r.name}-{spec.backend if spec.backend == 'random' else 'model'}.json"
    out = check_output_file(out, EVAL_SIGNATURE)
    splits = r.eval.splits if split == "all" else [split]
    unknown = [s for s in splits if s not in r.env.splits]
    if unknown:
        _fail(f"{recipe}: split {unknown[0]!r} is not in env.splits ({', '.join(r.env.splits)})", 2)
    _quiet_hf()
    from steca_data.policies.base import sampling_params
    from steca_data.policies.factory import make_policy
    from steca_train.evaluate import eval_modes, evaluate, report

    try:
        agent = make_policy(spec, name)
    except (ImportError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc), 2)
    modes = eval_modes(
        spec.backend == "random",
        r.eval.greedy if greedy is None else greedy,
        r.eval.samples if samples is None else samples,
        r.eval.temperature if temperature is None else temperature,
        sampling_params(spec, seed=r.eval.seed),
    )
    if not modes:
        _fail("nothing to evaluate: --no-greedy with --samples 0", 2)
    max_steps = r.eval.max_steps or r.env.max_steps
    start = time.monotonic()
    results = evaluate(r, agent, splits, modes, max_steps, limit or r.eval.limit, r.eval.seed, _reporter(quiet))
    doc = report(r, name, agent, modes, max_steps, results, time.monotonic() - start)
    write_file_atomically(out, json.dumps(doc, indent=1))
    _print_results(results, doc)
    err.print(
        escape(f"report: {out}; episodes in {r.cache_path} (source 'eval', policy_id '{agent.policy_id}')"),
        soft_wrap=True,
    )


def _print_results(results, doc) -> None:
    from rich.table import Table
    from rich.text import Text

    title = f"{doc['recipe']} · {doc['policy_id']} · {doc['prompt_version']} · ≤{doc['max_steps']} steps"
    table = Table(title=Text(title))
    for col in ("split", "mode", "episodes", "avg reward [95% CI]", "success [95% CI]", "steps", "invalid", "unparsed"):
        table.add_column(col, justify="left" if col in ("split", "mode") else "right")
    for x in results:
        table.add_row(
            Text(x.split),
            Text(x.mode),
            str(x.episodes),
            f"{x.avg_reward:.3f} [{x.avg_reward_ci95[0]:.2f}, {x.avg_reward_ci95[1]:.2f}]",
            f"{x.success_rate:.0%} [{x.success_ci95[0]:.0%}, {x.success_ci95[1]:.0%}]",
            f"{x.avg_steps:.1f}",
            f"{x.invalid_action_rate:.0%}",
            str(x.unparsable_replies),
        )
    Console(width=max(120, Console().width)).print(table)
    for split, notes in doc.get("task_notes", {}).items():  # a block with fewer runnable tasks says why
        Console(width=max(120, Console().width)).print(Text(f"{split}: {notes['summary']}"), soft_wrap=True)


@app.command()
def merge(
    adapter: Path = typer.Argument(..., help="A LoRA adapter dir written by `sft` with sft.lora set."),
    out: Path = typer.Option(..., "--out", help="Where to write the merged full model."),
) -> None:
    """Fold a LoRA adapter into its base model (a plain checkpoint for eval or vLLM)."""
    _quiet_hf()
    from steca_data.training.trainer import merge_lora

    if not str(adapter).strip() or not (adapter / "adapter_config.json").is_file():
        _fail(f"{adapter}: no adapter_config.json (not a LoRA adapter; `steca-train sft` with sft.lora writes one)", 2)
    out = check_output_dir(out, "model", sources=[adapter])
    check_model_dir(adapter)
    try:
        merged = merge_lora(adapter, out)
    except (ValueError, KeyError, TypeError) as exc:  # an adapter_config.json that names no usable adapter
        from steca_data.core.failures import describe

        _fail(f"{adapter}: not a usable LoRA adapter ({describe(exc, 160)}); pass the folder `steca-train sft` "
              "wrote with sft.lora set", 2)  # fmt: skip
    err.print(f"[green]merged[/green] → {escape(str(merged))}")


from steca_train.cli_reinforce import experiment_cmd, methods_cmd, reinforce_cmd  # noqa: E402 (kept in their own module)

app.command("methods")(methods_cmd)
app.command("reinforce")(reinforce_cmd)
app.command("experiment")(experiment_cmd)


def main() -> None:
    """The ``steca-train`` console script: the app under the one error policy (``cli.common.run_app``)."""
    entry_point(app, "steca-train")


if __name__ == "__main__":
    main()
