"""``trl-dpo``: preference pairs from the build's cache for TRL's DPOTrainer, one ``kind`` per method.

- ``steca``: Dc's deviated prefix as the prompt, calibrated continuation (chosen) vs the agent's own
  continuation after the deviated step (rejected);
- ``ipr``: IPR's step-level pairs, the expert step vs the agent's step from the same expert prefix, the
  higher Monte Carlo step reward chosen;
- ``eto``: ETO's trajectory pairs, the expert trajectory vs an exploration with a different outcome.
"""

from __future__ import annotations

from datasets import Features, Value

from . import pairs
from .build_dir import BuildDir
from .bundle import MESSAGES, ROW_ID, Bundle, Split, columns

KINDS = ("steca", "ipr", "eto")

FEATURES = Features(
    {
        **ROW_ID,
        "kind": Value("string"),
        "prompt": MESSAGES,
        "chosen": MESSAGES,
        "rejected": MESSAGES,
        **columns("float64", "chosen_score", "rejected_score", "margin", "weight"),
    }
)

USAGE = """\
from datasets import load_from_disk
from trl import DPOConfig, DPOTrainer

pairs = load_from_disk("OUT/dataset")["train"]
ipr = pairs.filter(lambda r: r["kind"] == "ipr" and r["margin"] >= 0.5)  # IPR's default step threshold
trainer = DPOTrainer(model, args=DPOConfig(), train_dataset=ipr, processing_class=tok)
"""


def pair_row(pair: pairs.Pair) -> dict:
    return {
        "id": pair.id,
        "kind": pair.kind,
        "task_id": pair.task_id,
        "step": pair.step,
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "chosen_score": pair.chosen_score,
        "rejected_score": pair.rejected_score,
        "margin": pair.margin,
        "weight": pair.weight,
    }


# kind -> how the build's pairs of that kind are assembled (the one place pairs are built, for exports and training)
ASSEMBLE = {"steca": pairs.calibration_pairs, "ipr": pairs.step_pairs, "eto": pairs.trajectory_pairs}


def pair_rows(build: BuildDir, kinds: tuple[str, ...] = KINDS, bundle: Bundle | None = None) -> list[dict]:
    """The export's rows of ``kinds``, in its order: what ``steca-train``'s DPO methods train on, byte for byte.

    Skipped candidates are counted on ``bundle`` (a scratch one when none is given)."""
    bundle = bundle if bundle is not None else Bundle(format="trl-dpo", title="", consumer="")
    found = [p for kind in KINDS if kind in kinds for p in ASSEMBLE[kind](build, bundle)]
    return [pair_row(p) for p in sorted(found, key=pairs.Pair.sort_key)]


def export(build: BuildDir) -> Bundle:
    build.require_cache("--format trl-dpo")
    bundle = Bundle(format="trl-dpo", title="TRL DPO preference pairs", consumer="TRL's DPOTrainer", usage=USAGE)
    rows = pair_rows(build, KINDS, bundle)
    bundle.splits["train"] = Split(rows, FEATURES)
    per_kind = {kind: sum(r["kind"] == kind for r in rows) for kind in KINDS}
    bundle.contents = [
        "split `train`: conversational `prompt` / `chosen` / `rejected` (role/content), "
        "sorted by kind, task, step, id; " + ", ".join(f"{n} {kind}" for kind, n in per_kind.items()),
        "`kind` = `steca`: prompt = Dc's context (history e_1..e_{t-1}, the deviated step and its observation); "
        "chosen = the reflected step and the expert continuation; rejected = the agent's continuation after the "
        "deviated step (the rollout behind the Dc row); scores are outcome rewards; `weight` = r_c",
        "`kind` = `ipr`: prompt = the expert prefix e_1..e_{t-1}; chosen/rejected = one assistant turn each, the "
        "expert step and the agent's proposed step; scores are their Monte Carlo step rewards (mean outcome of "
        "the rollouts after each), the higher is chosen; `margin` = the difference (ties are left out)",
        "`kind` = `eto`: prompt = system + task; chosen/rejected = the expert trajectory and an exploration from "
        "the start state with a different outcome (distinct action sequences only); scores are outcome rewards",
        "`step`: the 1-based expert position the pair branches at (0 = the start state); `margin` = chosen_score "
        "- rejected_score",
    ]
    bundle.notes = [
        "No threshold is applied beyond ties: filter on `margin` as IPR (step threshold) or STeCa (0.01) do.",
        "Pairs come from the units this build used (the engine's own keys over the build's cache); nothing is "
        "recomputed.",
    ]
    return bundle
