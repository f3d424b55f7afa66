"""What every training method is: the data it reads from a build, how it trains, its defaults, one line about it.

A method reads like a torchtune recipe, top to bottom: ``data`` (which rows or pairs of a build), then
``train`` (setup → train → save into ``run.out``). Two trainers serve them all:

- ``WeightedMethod``: the weighted-likelihood trainer (``training.trainer.train``) on built rows, each row's
  per-turn ``loss`` flags as the mask and its ``reward_weight`` (or 1) as the weight;
- ``DPOMethod``: TRL's DPOTrainer (``steca_train.dpo``) on preference pairs, assembled by the same functions
  that ``steca-data export --format trl-dpo`` writes with (``export.trl_dpo.pair_rows``).

A method whose data has a shape of its own (pair kinds, self-reflected rows, an export format) declares that in
the data package, under the same name (``steca_data.export.methods``), and reads it through ``data_side``:
the data package never imports the trainer, and the exports write what the methods train on.

``data`` returns exactly the rows an export writes; what the trainer then does to them (a history window, a cut
to ``dpo.max_turns`` turns, tokenization) is training, the same for every method of that trainer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from steca_data.core.section import Section
from steca_data.export.build_dir import BuildDir


class NoOptions(Section):
    """A method without settings of its own (it trains with ``reinforce``'s)."""


@dataclass
class MethodRun:
    """One training run of one method: where it starts, what it reads, where it writes."""

    recipe: object  # the live recipe: training settings (``reinforce``), policy, prompt
    build: BuildDir  # the base build (rows, cache, engine units)
    init: Path  # the model to start from (the base agent, or the model of ``starts_from``)
    base: Path  # the base agent (reference model of the DPO methods that keep one)
    out: Path  # write the trained model here (a temp dir the runner renames when complete)
    scratch: Path  # a stable folder for the run's intermediate outputs (rounds), kept between runs
    seed: int
    reporter: object
    options: Section  # the method's own settings: its defaults, overridden by ``reinforce.methods.<name>``


class Method(ABC):
    """A training method (see the module docstring). Subclasses set the class attributes and ``data``/``train``."""

    name: ClassVar[str]
    label: ClassVar[str]  # the report's name for it
    description: ClassVar[str]  # one line, for `steca-train methods`
    trainer: ClassVar[str]  # "weighted" | "dpo" | "none"
    Options: ClassVar[type[Section]] = NoOptions
    starts_from: ClassVar[str | None] = None  # a method whose trained model this one continues
    trains: ClassVar[bool] = True  # False: the base agent itself is the method's model

    @property
    def data_side(self):
        """This method's entry in the data package's registry (``steca_data.export.methods.MethodData``)."""
        from steca_data.export.methods import method_data

        return method_data(self.name)

    def options(self, recipe) -> Section:
        """The method's settings: its defaults, overridden by ``reinforce.methods.<name>`` (validated here)."""
        return self.Options.model_validate(recipe.reinforce.methods.get(self.name, {}))

    def needs(self, recipe) -> tuple[str, ...]:
        """The built datasets this method reads (checked against the recipe's ``datasets`` before any work)."""
        return ()

    def check(self, recipe) -> str | None:
        """A one-line reason the recipe cannot run this method (exit 2 before any work), or None."""
        missing = [name for name in self.needs(recipe) if name not in recipe.datasets]
        if missing:
            return f"datasets: {self.name} trains on {', '.join(missing)}, which the recipe does not build"
        return None

    def settings(self, recipe) -> dict:
        """What the trained model depends on besides the built data and the seed (hashed into its key)."""
        return {"options": self.options(recipe).model_dump(mode="json")}

    @abstractmethod
    def data(self, build: BuildDir, recipe) -> list[dict]:
        """The rows or pairs of ``build`` this method trains on (its first round's, for iterated methods)."""

    @abstractmethod
    def train(self, run: MethodRun) -> dict:
        """Train ``run.init`` into ``run.out``; returns what the results record about the run."""


# ------------------------------------------------------------------------------ the weighted-likelihood trainer
_TRAIN_SKIP = {"out", "init", "data", "time_budget_s", "save_every", "log_every", "threads", "device", "seed", "dpo",
               "methods", "datasets", "weighted", "activation_checkpointing", "parallel"}  # fmt: skip


def weighted_settings(recipe) -> dict:
    """``reinforce``'s settings that shape a weighted-likelihood run (not where it writes, nor how fast)."""
    return recipe.reinforce.model_dump(mode="json", exclude=_TRAIN_SKIP)


def weight_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per dataset: rows, mean / min / max weight (the analysis the results record)."""
    by: dict[str, list[float]] = {}
    for row in rows:
        by.setdefault(row.get("dataset", "?"), []).append(float(row.get("reward_weight", 1.0)))
    return {
        name: {"rows": len(w), "mean": sum(w) / len(w), "min": min(w), "max": max(w)} for name, w in sorted(by.items())
    }


class WeightedMethod(Method):
    """Rows of the build, each with its per-turn loss flags and a weight, on the weighted-likelihood trainer."""

    trainer = "weighted"

    def check(self, recipe) -> str | None:
        from steca_data.training.distributed import launched_processes

        world, accum = launched_processes(), recipe.reinforce.grad_accum
        if accum % world:
            return (
                f"reinforce.grad_accum ({accum}) must be a multiple of the number of processes ({world}): "
                f"a step's micro-batches are dealt to the ranks evenly (--set reinforce.grad_accum={world})"
            )
        return super().check(recipe)

    def settings(self, recipe) -> dict:
        return {**super().settings(recipe), "train": weighted_settings(recipe)}

    def examples_rows(self, rows: list[dict]) -> list[dict]:
        """The trainer's view of ``data``'s rows (role, content, loss; weight). Default: the rows themselves."""
        return rows

    def train(self, run: MethodRun) -> dict:
        from steca_train.reinforce import train_objective

        rows = self.examples_rows(self.data(run.build, run.recipe))
        spec = run.recipe.reinforce.model_copy(update={"seed": run.seed})
        label = f"train {self.name} s{run.seed}"
        result = train_objective(spec, run.init, rows, run.out, run.recipe.prompt.history, run.reporter, label)
        return {
            "rows": len(rows),
            "weights": weight_summary(rows),
            "steps": result.steps,
            "final_loss": result.final_loss,
            "train_seconds": round(result.seconds, 1),
        }


def rows_of(build: BuildDir, datasets, weighted: bool) -> list[dict]:
    """The build's rows of ``datasets`` (in that order, each sorted by id), weights kept or all set to 1."""
    missing = [name for name in datasets if name not in build.rows]
    if missing:
        raise ValueError(f"{build.path}: the build has no dataset {', '.join(missing)} (has {', '.join(build.rows)})")
    rows = [row for name in datasets for row in build.rows[name]]
    return rows if weighted else [{**row, "reward_weight": 1.0} for row in rows]


# ------------------------------------------------------------------------------------------ the DPO trainer
class DPOMethod(Method):
    """Preference pairs of the build (the kinds of ``export --format trl-dpo``) on TRL's DPOTrainer."""

    trainer = "dpo"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The trl-dpo ``kind`` values it trains on (declared by its data side)."""
        return self.data_side.kinds

    def check(self, recipe) -> str | None:
        from steca_data.training.distributed import launched_processes
        from steca_train.dpo import dpo_batch_problem

        if not recipe.uses_engine:  # every pair comes from the engine's proposals and rollouts
            return f"datasets: {self.name} pairs the engine's rollouts: the recipe must build dc, de or ds"
        world, rounds = launched_processes(), self.rounds(self.options(recipe))
        if world > 1 and rounds > 1:
            return (f"reinforce.methods.{self.name}.rounds: {rounds} rounds explore with the inference engine between "
                    f"trainings, which runs in one process, not under torchrun; launch without torchrun, or train "
                    f"one round per launch (--set reinforce.methods.{self.name}.rounds=1)")  # fmt: skip
        if recipe.reinforce.dpo.batch_size % world:
            return dpo_batch_problem(recipe.reinforce.dpo.batch_size, world)
        return super().check(recipe)

    def thresholds(self, options) -> dict[str, float]:
        """kind -> the smallest margin a pair needs (IPR's step / trajectory thresholds); none by default."""
        return {}

    def data(self, build: BuildDir, recipe) -> list[dict]:
        from steca_data.export.trl_dpo import pair_rows

        floors = self.thresholds(self.options(recipe))
        try:
            rows = pair_rows(build, self.kinds)
        finally:
            build.close()  # training (and a round's exploration) may write to the same cache next
        return [r for r in rows if r["margin"] >= floors.get(r["kind"], float("-inf"))]

    def settings(self, recipe) -> dict:
        return {**super().settings(recipe), "dpo": recipe.reinforce.dpo.model_dump(mode="json")}

    def dpo_round(self, run: MethodRun, rows: list[dict], init: Path, out: Path, **overrides) -> dict:
        """One DPO run of ``init`` on ``rows`` into ``out`` (``overrides``: beta, lr, loss, ref)."""
        from steca_train.dpo import train_dpo, trainer_pairs

        r = run.recipe
        spec = r.reinforce.dpo.model_copy(update={k: v for k, v in overrides.items() if k in ("beta", "lr")})
        pairs = trainer_pairs(rows, r.prompt.history, spec.max_turns)
        log = train_dpo(spec, init, pairs, out, seed=run.seed, threads=r.reinforce.threads,
                        losses=overrides.get("losses"), ref=overrides.get("ref"))  # fmt: skip
        return {"pairs": log["pairs"], "steps": log["steps"], "train_seconds": log["seconds"],
                "final_loss": log["history"][-1]["loss"] if log["history"] else None}  # fmt: skip

    def rounds(self, options) -> int:
        """How many explore → pair → train rounds (iterated methods override; 1: train on the build's pairs)."""
        return 1

    def round_settings(self, run: MethodRun, k: int) -> dict:
        """``dpo_round`` overrides of round ``k`` (beta, lr, losses, ref)."""
        return {}

    def train(self, run: MethodRun) -> dict:
        """Round 1 trains on the build's pairs; each later round's pairs come from the last model's exploration
        (``rounds.explore``). A later round without a pair ends the iteration: the last model stands."""
        import shutil

        from steca_data.policies.ids import policy_id
        from steca_train.methods.rounds import explore, round_model

        n, model, build, done = self.rounds(run.options), run.init, run.build, []
        for k in range(1, n + 1):
            if k > 1:
                build = explore(run, model, k)
            explorer = (build.base_agent() or ("?", None))[0]
            rows = self.data(build, run.recipe)
            if not rows and k > 1:
                run.reporter.info(f"{self.name} round {k}: no preference pair from {explorer}; round {k - 1} stands")
                done.append({"round": k, "explored_by": explorer, "pairs": 0})
                break
            out = round_model(run, k, n)
            info = self.dpo_round(run, rows, model, out, **self.round_settings(run, k))
            made = {} if out == run.out else {"model": policy_id(run.recipe.policy, str(out))}  # the last: the method's
            done.append({"round": k, "explored_by": explorer, **made, **info})
            model = out
        if model != run.out:
            shutil.copytree(model, run.out, dirs_exist_ok=True)
        if n > 1:
            _join_logs(run, [round_model(run, d["round"], n) for d in done if d["pairs"]])
        trained = [d for d in done if d["pairs"]]
        summary = {"steps": trained[-1]["steps"], "final_loss": trained[-1]["final_loss"],
                   "pairs": sum(d["pairs"] for d in done),
                   "train_seconds": round(sum(d.get("train_seconds", 0.0) for d in done), 1)}  # fmt: skip
        return summary if n == 1 else {**summary, "rounds": done}


def _join_logs(run: MethodRun, models: list[Path]) -> None:
    """One training curve across rounds in the method's ``train_log.json`` (steps counted on; each point says
    its round), so the report plots an iterated method like any other."""
    import json

    history, offset = [], 0
    for k, model in enumerate(models, 1):
        log = json.loads((model / "train_log.json").read_text())
        history += [{**h, "step": h["step"] + offset, "round": k} for h in log["history"]]
        offset += log["steps"]
    doc = json.loads((run.out / "train_log.json").read_text())
    (run.out / "train_log.json").write_text(json.dumps({**doc, "history": history, "steps": offset}, indent=1))
