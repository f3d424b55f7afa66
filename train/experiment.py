"""``steca-train experiment``: the paper's table in miniature, cached unit by unit.

    build (warm-up base agent → proposals → rollouts → reflections → Dc/De/Ds)     the builder's stages
    for each seed: train each method → evaluate seen/unseen → calibration analysis   the experiment's stages
    aggregate: results.json, results.md, methods.png, calibration.png, losses.png, and the headline
               <experiment.results>/<env.game>.json (``steca_train.results``: means, paired bootstrap CIs)

The build runs through the builder's stages; the experiment's steps run through the same stage template
(``steca_train.steps``): every unit has a key (a hash of exactly what it depends on: the base agent's weights
digest, the built rows' fingerprint, the training settings, the seed, the evaluation settings) and its record is
written last, after its files, into the build's cache. A rerun — or a killed run started again — finds those and
computes only the units that are missing. Seeds vary the methods' training (batch order) and evaluation sampling;
with ``experiment.seed_scope: methods`` (the default) the warm-up and the build are shared by all seeds (the
expensive, deterministic data side); with ``all`` each seed also has its own warm-up (init weights, batch order)
and build (rollout seeds), in ``<output.dir>/seed-<s>`` (``seed_recipe``). Every seed evaluates on the same tasks,
so the methods' outcomes pair up by (task, seed).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from steca_data.build.builder import played_env
from steca_data.cache.store import Cache
from steca_data.core.outputs import write_file_atomically
from steca_data.export.build_dir import BuildDir
from steca_data.stages.base import BuildContext
from steca_train.methods import method as find_method
from steca_train.methods import recipe_methods
from steca_train.methods.base import weight_summary
from steca_train.results import results_document
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


def results_path(recipe) -> Path:
    """``results/<env>.json``: ``<experiment.results>/<env.game>.json``, default beside ``results.json``."""
    folder = Path(recipe.experiment.results) if recipe.experiment.results else experiment_dir(recipe)
    return folder / f"{recipe.env.game}.json"


def seed_recipe(recipe, seed: int):
    """The recipe one seed builds with under ``seed_scope: all``: ``seed`` in every seed the data side reads
    (the init model's weights and the warm-up's batch order, which key the warm-up; the rollouts', which key the
    rollouts) and its own build directory ``<output.dir>/seed-<s>`` (and cache, if ``output.cache`` names one)."""
    name = f"seed-{seed}"
    cache = recipe.output.cache
    per_seed_cache = str(Path(cache).parent / name / Path(cache).name) if cache else None
    output = {"dir": str(recipe.build_dir / name), "cache": per_seed_cache}
    return recipe.model_copy(
        update={
            "seed": seed,
            "model": recipe.model.model_copy(update={"seed": seed}),
            "sft": recipe.sft.model_copy(update={"seed": seed}),
            "rollouts": recipe.rollouts.model_copy(update={"seed": seed}),
            "output": recipe.output.model_copy(update=output),
        }
    )


def seed_groups(recipe) -> list[tuple[object, list[int]]]:
    """(the recipe a build is made with, the seeds trained and evaluated on it): one build shared by every seed
    (``seed_scope: methods``), or one build per seed (``all``)."""
    seeds = recipe.experiment.seeds
    if recipe.experiment.seed_scope == "all":
        return [(seed_recipe(recipe, s), [s]) for s in seeds]
    return [(recipe, list(seeds))]


def run_experiment(recipe, reporter) -> dict:
    """Everything, in order, skipping what is cached; returns the results document (also written)."""
    from steca_train.methods import check_methods

    problem = check_methods(recipe)
    if problem:
        raise ValueError(problem)
    t0 = time.monotonic()
    state = _State(recipe, experiment_dir(recipe), t0)
    doc: dict = {}
    for built, seeds in seed_groups(recipe):
        doc = _run_group(state, built, seeds, reporter)
    return doc


class _State:
    """What the experiment gathers across its builds: every build's facts, every run, every step's record."""

    def __init__(self, recipe, out: Path, t0: float):
        self.recipe, self.out, self.t0 = recipe, out, t0
        self.builds: list[dict] = []
        self.runs: list[dict] = []
        self.steps: list[StepRecord] = []
        self.done: list[int] = []
        self.before = earlier_seconds(out, recipe)  # what earlier runs of this experiment spent


ELAPSED = "elapsed.json"


def _settings_key(recipe) -> str:
    """The settings whose units an earlier run's time paid for. Not where it writes (a resumed run with other
    paths is the same one), nor the ``experiment`` section's lists of seeds, methods and calibration: adding a
    seed, a method or the calibration analysis adds units and keeps every earlier one, so the time spent on
    those counts (it once restarted from 0 when calibration was switched on after three seeds had run). Only
    ``seed_scope`` changes what the earlier units were."""
    from steca_data.core.keys import unit_key

    dump = recipe.model_dump(mode="json", exclude={"output": True, "description": True, "experiment": True})
    return unit_key("experiment-time", "2", recipe=dump, seed_scope=recipe.experiment.seed_scope)


def earlier_seconds(out: Path, recipe) -> float:
    """Wall seconds that earlier runs of these settings spent in ``out`` (``elapsed.json``), up to their last
    finished step; 0 for new settings (a changed recipe's earlier time is not this experiment's)."""
    try:
        doc = json.loads((out / ELAPSED).read_text())
    except (OSError, ValueError):
        return 0.0
    return float(doc.get("seconds", 0.0)) if doc.get("key") == _settings_key(recipe) else 0.0


def _note_elapsed(state: _State) -> None:
    """Written after each step, so a killed run's time counts up to its last finished step."""
    seconds = state.before + time.monotonic() - state.t0
    doc = {"key": _settings_key(state.recipe), "seconds": round(seconds, 1)}
    write_file_atomically(state.out / ELAPSED, json.dumps(doc) + "\n")


def _run_group(state: _State, recipe, seeds: list[int], reporter) -> dict:
    """Build (or find) one build, then run ``seeds`` on it."""
    from steca_data.core.outputs import mark
    from steca_data.executors.local import LocalExecutor
    from steca_train.report import write_report

    start = time.monotonic()
    base, base_id, fingerprint, stats = run_build(recipe, reporter)
    state.out.mkdir(parents=True, exist_ok=True)  # only once the build stands: a failure before creates nothing
    mark(state.out, "experiment")
    _note_elapsed(state)
    status = "computed" if stats.pop("computed") else "cached"
    shared = recipe is state.recipe
    step = "build" if shared else f"build s{seeds[0]}"
    state.steps.append(StepRecord(step, status, round(time.monotonic() - start, 1)))
    env = played_env(recipe)  # before the experiment's handle opens: reading the build opens its cache
    with Cache(recipe.cache_path) as cache:  # the experiment's one handle: its steps and the build's readers share it
        build = BuildDir.open(recipe.build_dir).share(cache)
        exp = Context(recipe, reporter, state.out, base, base_id, build, fingerprint, cache, env, state.steps)
        ctx = BuildContext(recipe, cache, reporter, executor=LocalExecutor(env, 1))  # steps run here
        ctx.play_env(env)
        try:
            return _run_seeds(state, exp, ctx, stats, seeds, write_report)
        finally:
            ctx.close()
            build.close()


def _run_seeds(state: _State, exp: Context, ctx: BuildContext, stats: dict, seeds: list[int], write_report) -> dict:
    """Per seed: train, evaluate, calibrate (each a stage); the report is rewritten after every seed, so a long
    run that is stopped still shows what it has."""
    from steca_train.report import plot_headline
    from steca_train.results import headline_markdown

    recipe, names = exp.recipe, recipe_methods(exp.recipe)
    rows = exp.build.rows
    state.builds.append({
        "seeds": seeds, "build_dir": str(recipe.build_dir), "base_model": str(exp.base_model),
        "base_policy_id": exp.base_policy_id, "data_fingerprint": exp.data_fingerprint, "build": stats,
        "datasets": weight_summary([row for rs in rows.values() for row in rs]),
        "data": {name: len(rows.get(name, [])) for name in ("dc", "de", "ds")},
        "base_nll": exp.found(run_step(NllStep(exp), ctx)[0].key),
    })  # fmt: skip
    cases = {}
    if recipe.experiment.calibration.enabled:
        cases = {u.item[0]: _cases(exp, u.key) for u in run_step(CasesStep(exp), ctx)}
    doc: dict = {}
    for seed in seeds:
        run_step(TrainStep(exp, names, seed), ctx)
        _note_elapsed(state)
        evaluated = {u.item[0]: exp.found(u.key) for u in run_step(EvalStep(exp, names, seed), ctx)}
        _note_elapsed(state)
        recovered: dict[str, dict] = {}
        if cases:
            for u in run_step(RecoveryStep(exp, names, seed, cases), ctx):
                recovered.setdefault(u.item[0], {})[u.item[2]] = exp.found(u.key)
        for name in names:
            trained = TrainStep(exp, [name], seed).units(ctx)
            marker = exp.found(trained[-1].key) if find_method(name).trains else None
            state.runs.append({"method": name, "seed": seed, "model": str(method_model(exp, name, seed)),
                               "train": marker, "results": evaluated[name]["results"],
                               "calibration": recovered.get(name, {})})  # fmt: skip
        state.done.append(seed)
        doc = _results(state)
        _note_elapsed(state)
        write_report(doc, state.out)
        write_file_atomically(results_path(state.recipe), json.dumps(doc["headline"], indent=1) + "\n")
        plot_headline(doc["headline"], results_path(state.recipe).with_suffix(".png"), doc["labels"])
        write_file_atomically(results_path(state.recipe).with_suffix(".md"),
                              headline_markdown(doc["headline"], doc["labels"]))  # fmt: skip
    return doc


def _cases(exp: Context, key: str) -> list:
    from steca_train.recovery import cases_from_dicts

    return cases_from_dicts(exp.found(key)["cases"])


def _data(builds: list[dict]) -> dict:
    """Dc/De/Ds rows: the one build's, or the mean over the seeds' builds."""
    if len(builds) == 1:
        return dict(builds[0]["data"])
    return {name: round(statistics.fmean(b["data"][name] for b in builds), 1) for name in ("dc", "de", "ds")}


def _results(state: _State) -> dict:
    recipe, names, first = state.recipe, recipe_methods(state.recipe), state.builds[0]
    seconds = round(time.monotonic() - state.t0, 1)
    total = round(state.before + seconds, 1)  # resumed runs add up: the experiment's cost, not this run's
    doc = {
        "recipe": recipe.name,
        "recipe_fingerprint": recipe.fingerprint(),
        "seed_scope": recipe.experiment.seed_scope,
        "base_model": first["base_model"],
        "base_policy_id": first["base_policy_id"],
        "data_fingerprint": first["data_fingerprint"],
        "build": first["build"],
        "datasets": first["datasets"],
        "base_nll": first["base_nll"],
        "seeds": list(state.done),
        "complete": len(state.done) == len(recipe.experiment.seeds),
        "methods": names,
        "labels": {name: find_method(name).label for name in names},
        "eval": eval_settings(recipe)["eval"],
        "runs": state.runs,
        "steps": [asdict(s) for s in state.steps],
        "seconds": seconds,
        "seconds_total": total,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if len(state.builds) > 1:  # seed_scope all: the first build's facts above, every build's here
        doc["builds"] = state.builds
    doc["table"] = summary_table(doc)
    doc["headline"] = results_document(recipe.env.game, state.runs, state.done, _data(state.builds), total / 60)
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
