"""Adaptive Monte Carlo against fixed N, replayed exactly over one fixed-N build (issue 25).

    python benchmarks/adaptive_mc.py RECIPE [--set KEY=VALUE ...] [--n-min 2] [--confidence 0.9 0.95 0.99]
                                     [--json out.json]

RECIPE (with its --set overrides) names a build already made with fixed ``rollouts.n`` = N and
``rollouts.scope: all``. Each adaptive setting {n_min, n_max = N, confidence} is replayed over that build's
cache, computing nothing: an adaptive build's rollouts are a prefix, key for key and byte for byte, of the
fixed build's (same keys, same seeds per (prefix, sample index)), and its stopping rule reads only the
stored rewards of samples 0..i in order, so the replay gives exactly the rollouts and verdicts an adaptive
build from nothing would (tests/stages/test_engine.py checks both halves of that claim).

Per setting it prints the rollouts the adaptive build needs against the fixed build's (scope all, and the
subset ``scope: first_deviation`` would roll out), the share saved, and the agreement of its deviation
verdicts with the fixed-N ones. Where the build has ground-truth labels (``labels.planner``), it also prints
the F1 of the verdicts against them (positive: a detour or a dead end), for the fixed build and each setting.
Target (issue 25): >= 40 % fewer rollouts than N = 5 at >= 98 % agreement, and an F1 no worse.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

TARGET_SAVED, TARGET_AGREEMENT = 0.40, 0.98


def _figures(recipe) -> dict:
    """Rollouts used (scope all and first_deviation) and the verdicts of one recipe over its build's cache."""
    from steca_data.build.builder import open_build
    from steca_data.stages.walks import engine_of

    with open_build(recipe, read_only=True) as ctx:
        engine = engine_of(ctx)
        proposals = engine.proposals()
        prefixes = engine.scored_prefixes(proposals)
        values = engine.values(prefixes)
        missing = [p.key for p in prefixes if p.key not in values]
        if missing:
            raise SystemExit(f"{recipe.build_dir}: {len(missing)} scored prefixes lack rollouts (build it first)")
        lazy = recipe.model_copy(
            update={"rollouts": recipe.rollouts.model_copy(update={"scope": "first_deviation"})}, deep=True
        )
        engine.recipe = lazy  # the prefixes scope first_deviation lists, given the same stored values
        first = {p.key for p in engine.rollout_prefixes(engine.walks, proposals)}
        engine.recipe = recipe
        judged = [(task, v) for task, vs in engine.verdicts().items() for v in vs]
        verdicts = {(task, v.step): v.deviated for task, v in judged}
        bad = _labels(ctx.cache.con, [(task, v) for task, v in judged if v.proposed_action != v.expert_action])
    return {
        "rollouts": sum(n for _, n, _ in values.values()),
        "rollouts_first_deviation": sum(values[k][1] for k in first),
        "verdicts": verdicts,
        "bad": bad,
    }


def _labels(con, judged) -> dict[tuple[str, int], bool]:
    """Per judged proposal (one that differs from the expert's action): is it bad (a detour or a dead end)
    by the planner's labels? Empty when the build has no labels."""
    from steca_data.core.ground_truth import is_bad

    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "plan_labels" not in tables:
        return {}
    rows = con.execute("SELECT task_id, step, action, expert_action, label FROM plan_labels").fetchall()
    labels = {(task, step, action, expert): label for task, step, action, expert, label in rows}
    out = {}
    for task, v in judged:
        label = labels.get((task, v.step, v.proposed_action, v.expert_action))
        if label is not None:
            out[(task, v.step)] = is_bad(label)
    return out


def f1(verdicts: dict, bad: dict) -> float | None:
    """F1 of the deviation verdicts against the labels, over the labelled judged proposals."""
    tp = sum(verdicts[k] and b for k, b in bad.items())
    wrong = sum(verdicts[k] != b for k, b in bad.items())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--n-min", type=int, nargs="+", default=[2])
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from steca_data.recipe.model import load_recipe

    fixed_recipe = load_recipe(args.recipe, args.overrides)
    spec = fixed_recipe.rollouts
    if spec.adaptive is not None or spec.scope != "all":
        sys.exit("the reference build must use a fixed rollouts.n and rollouts.scope: all")
    fixed = _figures(fixed_recipe)
    n_max = spec.n
    labelled = fixed["bad"]
    fixed["f1"] = f1(fixed["verdicts"], labelled) if labelled else None
    print(f"fixed N = {n_max}: {fixed['rollouts']} rollouts (first_deviation: {fixed['rollouts_first_deviation']}),"
          f" {len(fixed['verdicts'])} verdicts, {sum(fixed['verdicts'].values())} deviated"
          + (f"; {len(labelled)} labelled, {sum(labelled.values())} bad, F1 {_num(fixed['f1'])}"
             if labelled else ""))  # fmt: skip
    print(f"{'n_min':>5} {'conf':>6} {'rollouts':>9} {'saved':>6} {'first_dev':>9} {'saved':>6} {'agree':>7}"
          + (f" {'F1':>6}" if labelled else ""))  # fmt: skip
    rows = []
    for n_min in args.n_min:
        for confidence in args.confidence:
            adaptive = {"n_min": n_min, "n_max": n_max, "confidence": confidence}
            sets = [*args.overrides, f"rollouts.adaptive={json.dumps(adaptive)}"]
            got = _figures(load_recipe(args.recipe, sets))
            same = sum(got["verdicts"][k] == v for k, v in fixed["verdicts"].items())
            row = {
                **adaptive,
                "rollouts": got["rollouts"],
                "saved": 1 - got["rollouts"] / fixed["rollouts"],
                "rollouts_first_deviation": got["rollouts_first_deviation"],
                "saved_first_deviation": 1 - got["rollouts_first_deviation"] / fixed["rollouts_first_deviation"],
                "agreement": same / len(fixed["verdicts"]) if fixed["verdicts"] else 1.0,
                "deviated": sum(got["verdicts"].values()),
                "f1": f1(got["verdicts"], labelled) if labelled else None,
            }
            rows.append(row)
            print(f"{n_min:>5} {confidence:>6} {row['rollouts']:>9} {row['saved']:>6.1%} "
                  f"{row['rollouts_first_deviation']:>9} {row['saved_first_deviation']:>6.1%} "
                  f"{row['agreement']:>7.1%}" + (f" {_num(row['f1']):>6}" if labelled else ""))  # fmt: skip
    met = [r for r in rows if r["saved"] >= TARGET_SAVED and r["agreement"] >= TARGET_AGREEMENT
           and (r["f1"] is None or fixed["f1"] is None or r["f1"] >= fixed["f1"])]  # fmt: skip
    print(f"target (>= {TARGET_SAVED:.0%} fewer at >= {TARGET_AGREEMENT:.0%} agreement"
          + (", F1 no worse" if labelled else "") + "): "
          + (f"met by {len(met)} of {len(rows)} settings" if met else "not met"))  # fmt: skip
    if args.json:
        fixed_out = {k: v for k, v in fixed.items() if k not in ("verdicts", "bad")}
        fixed_out |= {"verdicts": len(fixed["verdicts"]), "labelled": len(labelled), "bad": sum(labelled.values())}
        args.json.write_text(json.dumps({"fixed": fixed_out, "adaptive": rows}, indent=2))
    return 0


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
