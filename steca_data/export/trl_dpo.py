"""``trl-dpo``: preference pairs from the build's cache for TRL's DPOTrainer, one ``kind`` per method.

The kinds are those the methods' data modules declare (``export/methods/``: STeCa's calibrated vs deviated
continuations, IPR's step-level pairs, ETO's trajectory pairs), in their registry's order; each module
assembles its own pairs and writes its card line.
"""

from __future__ import annotations

from datasets import Features, Value

from . import pairs
from .build_dir import BuildDir
from .bundle import MESSAGES, ROW_ID, Bundle, Split, columns
from .methods import pair_kinds

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
kind = pairs[0]["kind"]  # one method's pairs (the kinds are listed below); a margin threshold as IPR's
chosen = pairs.filter(lambda r: r["kind"] == kind and r["margin"] >= 0.5)
trainer = DPOTrainer(model, args=DPOConfig(), train_dataset=chosen, processing_class=tok)
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


def pair_rows(build: BuildDir, kinds: tuple[str, ...] | None = None, bundle: Bundle | None = None) -> list[dict]:
    """The export's rows of ``kinds`` (default: every kind), in its order: what ``steca-train``'s DPO methods
    train on, byte for byte. Each kind's pairs are built by its method's data module (the one place).

    Skipped candidates are counted on ``bundle`` (a scratch one when none is given)."""
    bundle = bundle if bundle is not None else Bundle(format="trl-dpo", title="", consumer="")
    chosen = [k for k in pair_kinds() if kinds is None or k.name in kinds]
    found = [p for kind in chosen for p in kind.assemble(build, bundle)]
    return [pair_row(p) for p in sorted(found, key=pairs.Pair.sort_key)]


def export(build: BuildDir) -> Bundle:
    build.require_cache("--format trl-dpo")
    bundle = Bundle(format="trl-dpo", title="TRL DPO preference pairs", consumer="TRL's DPOTrainer", usage=USAGE)
    kinds = pair_kinds()
    rows = pair_rows(build, None, bundle)
    bundle.splits["train"] = Split(rows, FEATURES)
    per_kind = {k.name: sum(r["kind"] == k.name for r in rows) for k in kinds}
    bundle.contents = [
        "split `train`: conversational `prompt` / `chosen` / `rejected` (role/content), "
        "sorted by kind, task, step, id; " + ", ".join(f"{n} {kind}" for kind, n in per_kind.items()),
        *(k.card for k in kinds),
        "`step`: the 1-based expert position the pair branches at (0 = the start state); `margin` = chosen_score "
        "- rejected_score",
    ]
    bundle.notes = [
        "No threshold is applied beyond ties: filter on `margin` as IPR (step threshold) or STeCa (0.01) do.",
        "Pairs come from the units this build used (the engine's own keys over the build's cache); nothing is "
        "recomputed.",
    ]
    return bundle
