"""The experiment's steps as stages of the build's template (``steca_data.stages.base``): units with keys.

Each step lists its units — one per (method, seed) to train, one per (method, seed) to evaluate, one per
held-out split to find calibration cases in, one per (method, seed, split) to replay them — each keyed by a hash
of exactly what it depends on (the base agent's weights, the built rows' fingerprint, the method's settings, the
seed, the evaluation settings). The template's run loop asks the experiment's cache which keys it holds and
computes the rest; a unit's record in the ``artifacts`` table is written the moment it is done, after its files,
so a killed experiment resumes at the unit. A unit whose files were deleted since is computed again.

The steps read and write through the experiment's one cache handle (``Context.cache``): DuckDB refuses a
read-only and a read-write handle on one file in one process, so the build directory's readers share it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from steca_data.cache.store import Cache
from steca_data.core.keys import unit_key
from steca_data.envs.spec import EnvSpec
from steca_data.export.build_dir import BuildDir
from steca_data.stages.base import BuildContext, Emit, Stage, Unit
from steca_train.methods import method as find_method
from steca_train.methods.base import MethodRun

EXPERIMENT_VERSION = "1"
# the evaluation unit's record: 2 adds each result's per-task outcomes (``tasks``); its own version so that a
# record without them is computed again (from the cached episodes) while trained models stand
EVAL_RECORD_VERSION = "2"


@dataclass
class StepRecord:
    name: str
    status: str  # computed | cached
    seconds: float


@dataclass
class Context:
    """What every step of one experiment shares: the recipe, the base agent, the build and the one cache handle."""

    recipe: object
    reporter: object
    out: Path
    base_model: Path
    base_policy_id: str
    build: BuildDir
    data_fingerprint: str
    cache: Cache
    env: EnvSpec  # the recipe's env section as the build plays it (pointed at games the build generated)
    steps: list[StepRecord] = field(default_factory=list)

    def found(self, key: str) -> dict | None:
        """A finished unit's record (None if absent, or if its files were deleted since)."""
        return self.cache.get_artifact(key)


class ExperimentStep(Stage):
    """A step of the experiment: units whose results are ``artifacts`` rows; a failure stops the experiment."""

    table = "artifacts"
    records_failures = False
    kind = ""  # the artifacts row's kind

    def __init__(self, exp: Context):
        self.exp = exp
        self.seconds: dict[str, float] = {}

    def unit_name_of(self, unit: Unit) -> str:
        """The step's name in the results (``train steca s0``)."""
        return f"{self.name} {unit.task_id}"

    def done(self, ctx: BuildContext, keys: list[str]) -> set[str]:
        return {k for k in keys if ctx.cache.get_artifact(k) is not None}

    def compute(self, ctx: BuildContext, todo: list[Unit], emit: Emit) -> None:
        for unit in todo:  # one at a time: each unit trains or plays on every core there is
            start = time.monotonic()
            result = self.compute_one(unit)
            self.seconds[unit.key] = round(time.monotonic() - start, 1)
            emit(unit, result)
            self.exp.reporter.info(f"{self.unit_name_of(unit)}: computed ({self.seconds[unit.key]:.0f}s)")

    def compute_one(self, unit: Unit) -> tuple[Path, dict]:
        """(the unit's files, its record)."""
        raise NotImplementedError

    def store(self, ctx: BuildContext, unit: Unit, result: tuple[Path, dict]) -> bool:
        path, doc = result
        ctx.cache.put_artifact(unit.key, self.kind, path, doc)
        return True


def run_step(step: ExperimentStep, ctx: BuildContext) -> list[Unit]:
    """Run ``step`` through the template's loop; record each unit as computed or cached, in unit order."""
    step.run(ctx)
    units = step.units(ctx)
    for unit in units:
        seconds = step.seconds.get(unit.key)
        status = "cached" if seconds is None else "computed"
        step.exp.steps.append(StepRecord(step.unit_name_of(unit), status, seconds or 0.0))
    return units


# ------------------------------------------------------------------------------------------- training
def method_key(exp: Context, name: str, seed: int) -> str:
    """What a method's trained model depends on: its data, its settings, the model it starts from, the seed."""
    m, r = find_method(name), exp.recipe
    parts = {"base": exp.base_policy_id, "seed": seed, "history": r.prompt.history, "data": exp.data_fingerprint,
             **m.settings(r)}  # fmt: skip
    if m.starts_from:
        parts["init"] = method_key(exp, m.starts_from, seed)
    return unit_key("method", EXPERIMENT_VERSION, method=name, **parts)


def method_dir(exp: Context, name: str, seed: int) -> Path:
    return exp.out / "models" / f"{name}-s{seed}-{method_key(exp, name, seed)[:10]}"


def method_model(exp: Context, name: str, seed: int) -> Path:
    """The model of method ``name`` for ``seed``: the base agent for a method that trains nothing."""
    return method_dir(exp, name, seed) if find_method(name).trains else exp.base_model


class TrainStep(ExperimentStep):
    """One unit per trained method and seed; a method that continues another's model comes after it."""

    name, kind = "train", "method"
    unit_name = "methods"

    def __init__(self, exp: Context, names: list[str], seed: int):
        super().__init__(exp)
        self.names, self.seed = names, seed

    def units(self, ctx: BuildContext) -> list[Unit]:
        order: list[str] = []

        def add(name: str) -> None:
            m = find_method(name)
            if m.starts_from:
                add(m.starts_from)
            if m.trains and name not in order:
                order.append(name)

        for name in self.names:
            add(name)
        return [Unit(method_key(self.exp, n, self.seed), f"{n} s{self.seed}", n) for n in order]

    def compute_one(self, unit: Unit) -> tuple[Path, dict]:
        exp, name, seed = self.exp, unit.item, self.seed
        m = find_method(name)
        final = method_dir(exp, name, seed)
        init = method_model(exp, m.starts_from, seed) if m.starts_from else exp.base_model
        work = final.with_name(final.name + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        run = MethodRun(recipe=exp.recipe, build=exp.build, init=init, base=exp.base_model, out=work,
                        scratch=exp.out / "rounds" / final.name, seed=seed, reporter=exp.reporter,
                        options=m.options(exp.recipe))  # fmt: skip
        info = m.train(run)
        shutil.rmtree(work / "checkpoint", ignore_errors=True)  # the experiment never resumes mid-run
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
        return final, {"method": name, "seed": seed, "key": unit.key, **info}


# ------------------------------------------------------------------------------------------ evaluation
def eval_settings(recipe) -> dict:
    e = recipe.eval
    return {
        "eval": e.model_dump(mode="json", exclude={"seed"}),
        "env": recipe.env.model_dump(mode="json", exclude={"workers", "jvm_max_heap"}),
        "decoding": recipe.policy.model_dump(mode="json", exclude={"batch_size", "threads", "device", "model"}),
        "prompt": recipe.prompt.model_dump(mode="json"),
    }


def case_rule(recipe) -> dict:
    """What decides a calibration case: the first-difference rule has no inputs beyond the walk (and keeps the
    key it always had); the Monte Carlo rule adds its rollouts and delta."""
    c = recipe.experiment.calibration
    if c.rule == "first_difference":
        return {}
    ro = recipe.rollouts
    return {"rule": c.rule, "n": ro.n, "t": ro.temperature, "max_steps": ro.max_steps, "delta": recipe.deviation.delta}


def model_policy_id(exp: Context, model: Path) -> str:
    from steca_data.policies.ids import policy_id

    return policy_id(exp.recipe.policy, str(model))


@contextmanager
def played(exp: Context, model: Path) -> Iterator:
    """The recipe's policy backend on ``model``, for one unit. Models are played one after another, so a vLLM
    engine the unit started is shut down after it (its KV cache and weights freed for the next model's)."""
    from steca_data.policies.factory import make_policy

    engine = exp.recipe.policy.backend == "vllm"
    if engine:
        from steca_data.policies.vllm_policy import engine_running, release_engines

        started = not engine_running(str(model))
    policy = make_policy(exp.recipe.policy, str(model))
    try:
        yield policy
    finally:
        if engine:
            policy.close()
            if started:
                release_engines(str(model))


class EvalStep(ExperimentStep):
    """One unit per method and seed: its model's seen/unseen results, each with its tasks' outcomes
    (``tasks``: task id -> success and final reward, means over samples); episodes also land in the cache."""

    name, kind = "eval", "exp-eval"
    unit_name = "models"

    def __init__(self, exp: Context, names: list[str], seed: int):
        super().__init__(exp)
        self.names, self.seed = names, seed

    def units(self, ctx: BuildContext) -> list[Unit]:
        r, units = self.exp.recipe, []
        for name in self.names:
            model = method_model(self.exp, name, self.seed)
            key = unit_key("exp-eval", EXPERIMENT_VERSION, record=EVAL_RECORD_VERSION, seed=self.seed,
                           policy=model_policy_id(self.exp, model), **eval_settings(r))  # fmt: skip
            units.append(Unit(key, f"{name} s{self.seed}", (name, model)))
        return units

    def compute_one(self, unit: Unit) -> tuple[Path, dict]:
        from steca_data.policies.base import sampling_params
        from steca_train.evaluate import eval_modes, evaluate

        (name, model), r, seed = unit.item, self.exp.recipe, self.seed
        params = sampling_params(r.policy, seed=seed)
        modes = eval_modes(False, r.eval.greedy, r.eval.samples, r.eval.temperature, params)
        max_steps = r.eval.max_steps or r.env.max_steps
        outcomes: dict[tuple[str, str], dict] = {}
        with played(self.exp, model) as policy:
            results = evaluate(r, policy, r.eval.splits, modes, max_steps, r.eval.limit, seed, self.exp.reporter,
                               outcomes)  # fmt: skip
        rows = [asdict(x) | {"tasks": outcomes.get((x.split, x.mode), {})} for x in results]
        doc = {"method": name, "seed": seed, "model": str(model), "results": rows}
        return self.exp.out, doc


# ----------------------------------------------------------------------------------------- calibration
class CasesStep(ExperimentStep):
    """One unit per held-out split: deviation cases found once with the base agent (shared by methods, seeds)."""

    name, kind = "calibration cases", "cases"
    unit_name = "splits"

    def units(self, ctx: BuildContext) -> list[Unit]:
        exp, r = self.exp, self.exp.recipe
        limit = r.experiment.calibration.tasks or r.eval.limit
        return [
            Unit(
                unit_key(
                    "cases",
                    EXPERIMENT_VERSION,
                    base=exp.base_policy_id,
                    split=split,
                    limit=limit,
                    **eval_settings(r),
                    **case_rule(r),
                ),
                split,
                (split, limit),
            )  # fmt: skip
            for split in r.experiment.calibration.splits
        ]

    def compute_one(self, unit: Unit) -> tuple[Path, dict]:
        from steca_data.envs.registry import list_tasks, make_backend
        from steca_train.recovery import case_dicts, expert_walks, find_cases

        (split, limit), exp, r = unit.item, self.exp, self.exp.recipe
        backend = make_backend(exp.env)
        try:
            walks = expert_walks(r, list_tasks(exp.env, split)[:limit], backend)
            with played(exp, exp.base_model) as policy:
                cases = find_cases(r, policy, walks, backend, r.policy.max_new_tokens, r.experiment.calibration.rule)
        finally:
            backend.close()
        return exp.out, {"split": split, "tasks": len(walks), "cases": case_dicts(cases)}


class RecoveryStep(ExperimentStep):
    """One unit per method, seed and split: the model replayed from each case's deviated history."""

    name, kind = "calibration", "recovery"
    unit_name = "cases"

    def __init__(self, exp: Context, names: list[str], seed: int, cases: dict[str, list]):
        super().__init__(exp)
        self.names, self.seed, self.cases = names, seed, cases

    def units(self, ctx: BuildContext) -> list[Unit]:
        exp, units = self.exp, []
        for name in self.names:
            model = method_model(exp, name, self.seed)
            for split, cases in self.cases.items():
                key = unit_key("recovery", EXPERIMENT_VERSION, record=2, policy=model_policy_id(exp, model),
                               seed=self.seed, split=split,
                               cases=[(c.task.task_id, c.t, c.deviated.action) for c in cases],
                               **eval_settings(exp.recipe))  # fmt: skip
                units.append(Unit(key, f"{name} s{self.seed} {split}", (name, model, split)))
        return units

    def compute_one(self, unit: Unit) -> tuple[Path, dict[str, Any]]:
        from steca_data.envs.registry import make_backend
        from steca_data.policies.base import sampling_params
        from steca_train.recovery import play_cases

        (_, model, split), exp, r = unit.item, self.exp, self.exp.recipe
        cases = self.cases[split]
        if not cases:
            return exp.out, {"cases": 0}
        params = sampling_params(r.policy, temperature=r.eval.temperature, seed=self.seed)
        backend = make_backend(exp.env)
        try:
            with played(exp, model) as policy:
                return exp.out, {"cases": len(cases), **play_cases(r, policy, cases, params, self.seed, backend)}
        finally:
            backend.close()


class NllStep(ExperimentStep):
    """One unit: the base agent's per-token NLL on each built dataset."""

    name, kind = "nll", "nll"
    unit_name = "datasets"

    def units(self, ctx: BuildContext) -> list[Unit]:
        exp = self.exp
        return [Unit(unit_key("nll", EXPERIMENT_VERSION, base=exp.base_policy_id, data=exp.data_fingerprint), "base")]

    def compute_one(self, unit: Unit) -> tuple[Path, dict]:
        from steca_train.reinforce import dataset_nll

        exp = self.exp
        return exp.out, dataset_nll(exp.base_model, exp.build.rows, exp.recipe.prompt.history)
