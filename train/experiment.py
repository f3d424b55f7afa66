"""``steca-train experiment``: the paper's table in miniature, cached step by step.

    build (warm-up base agent → proposals → rollouts → reflections → Dc/De/Ds)     the build's DuckDB cache
    for each seed, for each method: train from the base agent → evaluate seen/unseen → calibration analysis
    aggregate: results.json, results.md, methods.png, calibration.png, losses.png

Every step writes its output under a directory (or JSON file) named by a hash of exactly what it depends
on (the base agent's weights digest, the built rows' fingerprint, the training settings, the seed, the
evaluation settings), and writes it last, atomically. A rerun finds those and redoes only what changed.
Seeds vary the methods' training (batch order) and evaluation sampling; the warm-up and the build are
shared by all seeds (they are the expensive, deterministic data side).
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from steca_data.build.builder import played_env
from steca_data.core.keys import unit_key
from steca_data.export.build_dir import BuildDir
from steca_train.methods import method as find_method
from steca_train.methods import recipe_methods
from steca_train.methods.base import MethodRun, weight_summary

EXPERIMENT_VERSION = "1"


@dataclass
class StepRecord:
    name: str
    status: str  # computed | cached
    seconds: float


@dataclass
class Context:
    recipe: object
    reporter: object
    out: Path
    base_model: Path
    base_policy_id: str
    build: BuildDir
    data_fingerprint: str
    steps: list[StepRecord] = field(default_factory=list)

    def record(self, name: str, status: str, start: float) -> None:
        self.steps.append(StepRecord(name, status, round(time.monotonic() - start, 1)))
        self.reporter.info(f"{name}: {status} ({time.monotonic() - start:.0f}s)")


def _found(ctx: Context, key: str) -> dict | None:
    """A finished step's record from the build's DuckDB ``artifacts`` table (None if absent or deleted)."""
    from steca_data.cache.store import Cache

    with Cache(ctx.recipe.cache_path) as cache:
        return cache.get_artifact(key)


def _keep(ctx: Context, key: str, kind: str, path: Path, doc: dict) -> dict:
    """Record a finished step, after its files (if any) are complete: the record is the step's commit."""
    from steca_data.cache.store import Cache

    with Cache(ctx.recipe.cache_path) as cache:
        cache.put_artifact(key, kind, path, doc)
    return doc


# ----------------------------------------------------------------------------------------------- build
def run_build(recipe, reporter) -> tuple[Path, str, str, dict]:
    """Build (or find) Dc/De/Ds; returns the base agent dir, its policy id, the rows fingerprint, stats."""
    from steca_data.build.builder import Builder, open_build
    from steca_data.stages.agent import AgentHandle

    if recipe.policy.backend != "transformers":
        raise ValueError("experiment: policy.backend must be 'transformers' (methods are trained locally)")
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


# ------------------------------------------------------------------------------------------- methods
def method_key(ctx: Context, name: str, seed: int) -> str:
    """What a method's trained model depends on: its data, its settings, the model it starts from, the seed."""
    m, r = find_method(name), ctx.recipe
    parts = {"base": ctx.base_policy_id, "seed": seed, "history": r.prompt.history, "data": ctx.data_fingerprint,
             **m.settings(r)}  # fmt: skip
    if m.starts_from:
        parts["init"] = method_key(ctx, m.starts_from, seed)
    return unit_key("method", EXPERIMENT_VERSION, method=name, **parts)


def method_dir(ctx: Context, name: str, seed: int) -> Path:
    return ctx.out / "models" / f"{name}-s{seed}-{method_key(ctx, name, seed)[:10]}"


def train_method(ctx: Context, name: str, seed: int) -> Path:
    """The model of method ``name`` for ``seed``: the base agent itself for a method that trains nothing, else
    trained from the base agent (or from the model of the method it starts from), or found."""
    m = find_method(name)
    if not m.trains:
        return ctx.base_model
    final, key = method_dir(ctx, name, seed), method_key(ctx, name, seed)
    if _found(ctx, key) is not None:
        ctx.steps.append(StepRecord(f"train {name} s{seed}", "cached", 0.0))
        return final
    init = train_method(ctx, m.starts_from, seed) if m.starts_from else ctx.base_model
    start = time.monotonic()
    work = final.with_name(final.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    run = MethodRun(recipe=ctx.recipe, build=ctx.build, init=init, base=ctx.base_model, out=work,
                    scratch=ctx.out / "rounds" / final.name, seed=seed, reporter=ctx.reporter,
                    options=m.options(ctx.recipe))  # fmt: skip
    info = m.train(run)
    shutil.rmtree(work / "checkpoint", ignore_errors=True)  # the experiment never resumes mid-run
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    _keep(ctx, key, "method", final, {"method": name, "seed": seed, "key": key, **info})
    ctx.record(f"train {name} s{seed}", "computed", start)
    return final


# ---------------------------------------------------------------------------------------------- eval
def _policy(ctx: Context, model: Path):
    from steca_data.policies.factory import make_policy

    return make_policy(ctx.recipe.policy, str(model))


def _eval_settings(recipe) -> dict:
    e = recipe.eval
    return {
        "eval": e.model_dump(mode="json", exclude={"seed"}),
        "env": recipe.env.model_dump(mode="json", exclude={"workers", "jvm_max_heap"}),
        "decoding": recipe.policy.model_dump(mode="json", exclude={"batch_size", "threads", "device", "model"}),
        "prompt": recipe.prompt.model_dump(mode="json"),
    }


def _policy_id(ctx: Context, model: Path) -> str:
    from steca_data.policies.ids import policy_id

    return policy_id(ctx.recipe.policy, str(model))


def evaluate_method(ctx: Context, method: str, model: Path, seed: int, policy_box: dict) -> dict:
    """Seen/unseen results of one model and seed (evaluation episodes also land in the build's cache)."""
    from steca_data.policies.base import sampling_params
    from steca_train.evaluate import eval_modes, evaluate

    r = ctx.recipe
    key = unit_key("exp-eval", EXPERIMENT_VERSION, policy=_policy_id(ctx, model), seed=seed, **_eval_settings(r))
    found = _found(ctx, key)
    if found is not None:
        ctx.steps.append(StepRecord(f"eval {method} s{seed}", "cached", 0.0))
        return found
    start = time.monotonic()
    policy = policy_box.setdefault("policy", _policy(ctx, model))
    modes = eval_modes(False, r.eval.greedy, r.eval.samples, r.eval.temperature, sampling_params(r.policy, seed=seed))
    max_steps = r.eval.max_steps or r.env.max_steps
    results = evaluate(r, policy, r.eval.splits, modes, max_steps, r.eval.limit, seed, ctx.reporter)
    doc = {"method": method, "seed": seed, "model": str(model), "results": [asdict(x) for x in results]}
    _keep(ctx, key, "exp-eval", ctx.out, doc)
    ctx.record(f"eval {method} s{seed}", "computed", start)
    return doc


def calibration_cases(ctx: Context, split: str) -> list:
    """Deviation cases on a held-out split, found once with the base agent (shared by methods and seeds)."""
    from steca_data.envs.registry import list_tasks, make_backend
    from steca_train.recovery import case_dicts, cases_from_dicts, expert_walks, find_cases

    r = ctx.recipe
    limit = r.experiment.calibration.tasks or r.eval.limit
    key = unit_key("cases", EXPERIMENT_VERSION, base=ctx.base_policy_id, split=split, limit=limit, **_eval_settings(r))
    found = _found(ctx, key)
    if found is not None:
        return cases_from_dicts(found["cases"])
    start = time.monotonic()
    backend = make_backend(played_env(r))
    try:
        walks = expert_walks(r, list_tasks(played_env(r), split)[:limit], backend)
        cases = find_cases(r, _policy(ctx, ctx.base_model), walks, backend, r.policy.max_new_tokens)
    finally:
        backend.close()
    _keep(ctx, key, "cases", ctx.out, {"split": split, "tasks": len(walks), "cases": case_dicts(cases)})
    ctx.record(f"calibration cases {split}", "computed", start)
    return cases


def calibration_method(ctx: Context, method: str, model: Path, seed: int, policy_box: dict) -> dict:
    from steca_data.envs.registry import make_backend
    from steca_data.policies.base import sampling_params
    from steca_train.recovery import play_cases

    r = ctx.recipe
    out = {}
    for split in r.experiment.calibration.splits:
        cases = calibration_cases(ctx, split)
        key = unit_key(
            "recovery", EXPERIMENT_VERSION, policy=_policy_id(ctx, model), seed=seed, split=split,
            cases=[(c.task.task_id, c.t, c.deviated.action) for c in cases], **_eval_settings(r),
        )  # fmt: skip
        found = _found(ctx, key)
        if found is not None:
            ctx.steps.append(StepRecord(f"calibration {method} s{seed} {split}", "cached", 0.0))
            out[split] = found
            continue
        start = time.monotonic()
        if not cases:
            doc = {"cases": 0}
        else:
            policy = policy_box.setdefault("policy", _policy(ctx, model))
            params = sampling_params(r.policy, temperature=r.eval.temperature, seed=seed)
            backend = make_backend(played_env(r))
            try:
                doc = {"cases": len(cases), **play_cases(r, policy, cases, params, seed, backend)}
            finally:
                backend.close()
        _keep(ctx, key, "recovery", ctx.out, doc)
        ctx.record(f"calibration {method} s{seed} {split}", "computed", start)
        out[split] = doc
    return out


# ------------------------------------------------------------------------------------------ the runner
def experiment_dir(recipe) -> Path:
    """Where the experiment writes: ``experiment.out``, else ``<build>/experiment``."""
    return Path(recipe.experiment.out) if recipe.experiment.out else recipe.build_dir / "experiment"


def run_experiment(recipe, reporter) -> dict:
    """Everything, in order, skipping what is cached; returns the results document (also written)."""
    from steca_train.methods import check_methods

    problem = check_methods(recipe)
    if problem:
        raise ValueError(problem)
    t0 = time.monotonic()
    out = experiment_dir(recipe)
    start = time.monotonic()
    base, base_id, fingerprint, stats = run_build(recipe, reporter)
    out.mkdir(parents=True, exist_ok=True)  # only once the build stands: a failure before creates nothing
    from steca_data.core.outputs import mark

    mark(out, "experiment")
    ctx = Context(recipe, reporter, out, base, base_id, BuildDir.open(recipe.build_dir), fingerprint)
    ctx.record("build", "computed" if stats.pop("computed") else "cached", start)
    from steca_train.report import write_report

    runs: list[dict] = []
    names = recipe_methods(recipe)
    datasets = weight_summary([row for rows in ctx.build.rows.values() for row in rows])
    base_nll = base_dataset_nll(ctx)
    for i, seed in enumerate(recipe.experiment.seeds):
        for name in names:
            model = train_method(ctx, name, seed)
            box: dict = {}  # the policy is loaded only if something is not cached
            evaluation = evaluate_method(ctx, name, model, seed, box)
            calibration = (
                calibration_method(ctx, name, model, seed, box) if recipe.experiment.calibration.enabled else {}
            )
            marker = _found(ctx, method_key(ctx, name, seed)) if find_method(name).trains else None
            runs.append({"method": name, "seed": seed, "model": str(model), "train": marker,
                         "results": evaluation["results"], "calibration": calibration})  # fmt: skip
        # the report is rewritten after every seed, so a long run that is stopped still shows what it has
        done = recipe.experiment.seeds[: i + 1]
        doc = {
            "recipe": recipe.name,
            "recipe_fingerprint": recipe.fingerprint(),
            "base_model": str(base),
            "base_policy_id": base_id,
            "data_fingerprint": fingerprint,
            "build": stats,
            "datasets": datasets,
            "base_nll": base_nll,
            "seeds": done,
            "complete": len(done) == len(recipe.experiment.seeds),
            "methods": names,
            "labels": {name: find_method(name).label for name in names},
            "eval": _eval_settings(recipe)["eval"],
            "runs": runs,
            "steps": [asdict(s) for s in ctx.steps],
            "seconds": round(time.monotonic() - t0, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        doc["table"] = summary_table(doc)
        write_report(doc, out)
    return doc


def base_dataset_nll(ctx: Context) -> dict:
    """The base agent's per-token NLL on each built dataset (cached by its weights and the rows)."""
    from steca_train.reinforce import dataset_nll

    key = unit_key("nll", EXPERIMENT_VERSION, base=ctx.base_policy_id, data=ctx.data_fingerprint)
    found = _found(ctx, key)
    if found is None:
        found = _keep(ctx, key, "nll", ctx.out, dataset_nll(ctx.base_model, ctx.build.rows, ctx.recipe.prompt.history))
    return found


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
