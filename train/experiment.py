"""``steca-train experiment``: the paper's table in miniature, cached unit by unit.

    build (warm-up base agent → proposals → rollouts → reflections → Dc/De/Ds)     the builder's stages
    for each seed: train each method → evaluate seen/unseen → calibration analysis   the experiment's stages
    aggregate: results.json, results.md, methods.png, calibration.png, losses.png

The build runs through the builder's stages; the experiment's steps run through the same stage template
(``steca_train.steps``): every unit has a key (a hash of exactly what it depends on: the base agent's weights
digest, the built rows' fingerprint, the training settings, the seed, the evaluation settings) and its record is
written last, after its files, into the build's cache. A rerun — or a killed run started again — finds those and
computes only the units that are missing. Seeds vary the methods' training (batch order) and evaluation sampling;
the warm-up and the build are shared by all seeds (they are the expensive, deterministic data side).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path

from steca_data.build.builder import played_env
from steca_data.cache.store import Cache
from steca_data.export.build_dir import BuildDir
from steca_data.stages.base import BuildContext
from steca_train.methods import method as find_method
from steca_train.methods import recipe_methods
from steca_train.methods.base import weight_summary
from steca_train.steps import (
    CasesStep,
    Context,
    EvalStep,
    NllStep,
    RecoveryStep,
    StepRecord,
    TrainStep,
    eval_settings,
    method_model,
    run_step,
)


# ----------------------------------------------------------------------------------------------- build
def run_build(recipe, reporter) -> tuple[Path, str, str, dict]:
    """Build (or find) Dc/De/Ds; returns the base agent dir, its policy id, the rows fingerprint, stats."""
    from steca_data.build.builder import Builder, open_build
    from steca_data.stages.agent import AgentHandle

    if recipe.policy.backend not in ("transformers", "vllm"):  # methods train into model dirs, which both load
        raise ValueError(
            f"policy.backend: the experiment plays the models it trains, so 'transformers' or 'vllm' "
            f"(got {recipe.policy.backend!r})"
        )
    if "expert" not in recipe.datasets or not recipe.uses_engine:  # each method checks the datasets it reads
        raise ValueError("experiment: datasets must include expert and the engine's (dc, de or ds)")
    summary = Builder(recipe, reporter).build()
    with open_build(recipe) as ctx:
        fingerprint = ctx.cache.get_meta("output_fingerprint")
        stats = build_stats(ctx)
        agent = ctx.get(AgentHandle)
    return Path(agent.model), agent.policy_id, fingerprint, stats | {"computed": summary.computed}


def build_stats(ctx) -> dict:
    """What this build's engine found (its own unit keys, not everything the cache holds): proposals, how many
    deviated, rollouts and their success. The analysis that explains the table."""
    from steca_data.stages.walks import engine_of

    engine, cache = engine_of(ctx), ctx.cache
    proposals = engine.proposals()
    prefixes = engine.scored_prefixes(proposals)
    starts = [k for p in prefixes if p.kind == "expert" and p.step == 0 for k in p.rollout_keys()]
    every = [k for p in prefixes for k in p.rollout_keys()]

    def rollouts(keys: list[str]) -> tuple[int, float | None]:
        return cache.sql(
            "SELECT count(*), avg(success::INT) FROM rollouts WHERE key IN (SELECT unnest(?))", [keys]
        ).fetchone()

    n_rollouts, success = rollouts(every)
    _, exploration = rollouts(starts)
    verdicts = [v for vs in engine.verdicts().values() for v in vs]
    return {
        "tasks": len(engine.walks),
        "proposals": len(proposals),
        "proposals_equal_expert": sum(
            proposals[(w.task.task_id, t)]["action"].strip() == w.actions[t - 1].strip()
            for w in engine.walks
            for t in range(1, len(w.actions) + 1)
            if (w.task.task_id, t) in proposals
        ),
        "judged": len(verdicts),
        "deviated": sum(v.deviated for v in verdicts),
        "first_deviations": sum(v.first for v in verdicts),
        "rollouts": n_rollouts,
        "rollout_success": success,
        "exploration_success": exploration,
        "reflections_ok": cache.sql(
            "SELECT count(*) FROM reflections WHERE status = 'ok' AND key IN (SELECT unnest(?))",
            [[f.reflection_key for f in engine.first_deviations()]],
        ).fetchone()[0],
    }


# ------------------------------------------------------------------------------------------ the runner
def experiment_dir(recipe) -> Path:
    """Where the experiment writes: ``experiment.out``, else ``<build>/experiment``."""
    return Path(recipe.experiment.out) if recipe.experiment.out else recipe.build_dir / "experiment"


def run_experiment(recipe, reporter) -> dict:
    """Everything, in order, skipping what is cached; returns the results document (also written)."""
    from steca_data.core.outputs import mark
    from steca_data.executors.local import LocalExecutor
    from steca_train.methods import check_methods
    from steca_train.report import write_report

    problem = check_methods(recipe)
    if problem:
        raise ValueError(problem)
    t0 = start = time.monotonic()
    out = experiment_dir(recipe)
    base, base_id, fingerprint, stats = run_build(recipe, reporter)
    out.mkdir(parents=True, exist_ok=True)  # only once the build stands: a failure before creates nothing
    mark(out, "experiment")
    status = "computed" if stats.pop("computed") else "cached"
    build_step = StepRecord("build", status, round(time.monotonic() - start, 1))
    env = played_env(recipe)  # before the experiment's handle opens: reading the build opens its cache
    with Cache(recipe.cache_path) as cache:  # the experiment's one handle: its steps and the build's readers share it
        build = BuildDir.open(recipe.build_dir).share(cache)
        exp = Context(recipe, reporter, out, base, base_id, build, fingerprint, cache, env, [build_step])
        ctx = BuildContext(recipe, cache, reporter, executor=LocalExecutor(env, 1))  # steps run here
        ctx.play_env(env)
        try:
            return _run_seeds(exp, ctx, stats, t0, write_report)
        finally:
            ctx.close()
            build.close()


def _run_seeds(exp: Context, ctx: BuildContext, stats: dict, t0: float, write_report) -> dict:
    """Per seed: train, evaluate, calibrate (each a stage); the report is rewritten after every seed, so a long
    run that is stopped still shows what it has."""
    recipe, names = exp.recipe, recipe_methods(exp.recipe)
    datasets = weight_summary([row for rows in exp.build.rows.values() for row in rows])
    base_nll = exp.found(run_step(NllStep(exp), ctx)[0].key)
    cases = {}
    if recipe.experiment.calibration.enabled:
        cases = {u.item[0]: _cases(exp, u.key) for u in run_step(CasesStep(exp), ctx)}
    runs: list[dict] = []
    for i, seed in enumerate(recipe.experiment.seeds):
        run_step(TrainStep(exp, names, seed), ctx)
        evaluated = {u.item[0]: exp.found(u.key) for u in run_step(EvalStep(exp, names, seed), ctx)}
        recovered: dict[str, dict] = {}
        if cases:
            for u in run_step(RecoveryStep(exp, names, seed, cases), ctx):
                recovered.setdefault(u.item[0], {})[u.item[2]] = exp.found(u.key)
        for name in names:
            trained = TrainStep(exp, [name], seed).units(ctx)
            marker = exp.found(trained[-1].key) if find_method(name).trains else None
            runs.append({"method": name, "seed": seed, "model": str(method_model(exp, name, seed)), "train": marker,
                         "results": evaluated[name]["results"], "calibration": recovered.get(name, {})})  # fmt: skip
        done = recipe.experiment.seeds[: i + 1]
        doc = _results(exp, stats, datasets, base_nll, runs, done, t0)
        write_report(doc, exp.out)
    return doc


def _cases(exp: Context, key: str) -> list:
    from steca_train.recovery import cases_from_dicts

    return cases_from_dicts(exp.found(key)["cases"])


def _results(exp: Context, stats: dict, datasets: dict, base_nll: dict, runs: list, done: list, t0: float) -> dict:
    recipe, names = exp.recipe, recipe_methods(exp.recipe)
    doc = {
        "recipe": recipe.name,
        "recipe_fingerprint": recipe.fingerprint(),
        "base_model": str(exp.base_model),
        "base_policy_id": exp.base_policy_id,
        "data_fingerprint": exp.data_fingerprint,
        "build": stats,
        "datasets": datasets,
        "base_nll": base_nll,
        "seeds": done,
        "complete": len(done) == len(recipe.experiment.seeds),
        "methods": names,
        "labels": {name: find_method(name).label for name in names},
        "eval": eval_settings(recipe)["eval"],
        "runs": runs,
        "steps": [asdict(s) for s in exp.steps],
        "seconds": round(time.monotonic() - t0, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    doc["table"] = summary_table(doc)
    return doc


def summary_table(doc: dict) -> list[dict]:
    """Mean ± std over seeds per method, split and mode (average final reward and success rate)."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for run in doc["runs"]:
        for res in run["results"]:
            cell = cells.setdefault((run["method"], res["split"], res["mode"]), {"reward": [], "success": []})
            cell["reward"].append(res["avg_reward"])
            cell["success"].append(res["success_rate"])
    table = []
    for (method, split, mode), values in cells.items():
        row = {"method": method, "split": split, "mode": mode, "seeds": len(values["reward"])}
        for name, xs in values.items():
            row[f"{name}_mean"] = round(statistics.fmean(xs), 4)
            row[f"{name}_std"] = round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0
        table.append(row)
    return table
