"""The experiment's headline document, ``results/<env>.json``: the paper's table in miniature.

Per method: success on seen and unseen tasks and the final reward on unseen tasks, each a mean with a 95 %
interval; per comparison of the reference method (STeCa) with every other method: the mean paired difference in
unseen success with its interval. Every number is in percentage points, and every interval is a bootstrap over
the (task, seed) cells: the cells are drawn with replacement, the same draws for both sides of a comparison (a
paired bootstrap, since every method plays the same tasks in each seed), with a fixed RNG seed so the same runs
always give the same file. Pure: the runs in, the document out (``steca_train.experiment`` writes it).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000
RNG_SEED = 0
Cell = tuple[str, int]  # (task id, seed)


def run_cells(runs: list[dict], split: str, mode: str, metric: str) -> dict[str, dict[Cell, float]]:
    """method -> (task, seed) -> the task's ``metric`` (``success`` or ``reward``, 0..1) in that seed's run."""
    out: dict[str, dict[Cell, float]] = {}
    for run in runs:
        cells = out.setdefault(run["method"], {})
        for res in run["results"]:
            if res["split"] == split and res["mode"] == mode:
                for task, outcome in res.get("tasks", {}).items():
                    cells[(task, run["seed"])] = float(outcome[metric])
    return out


def bootstrap(values: list[float], resamples: int = RESAMPLES, rng_seed: int = RNG_SEED) -> dict:
    """Mean and percentile 95 % interval of ``values`` (one per cell) x 100, cells resampled with replacement."""
    if not values:
        return {"mean": None, "ci95": [None, None], "cells": 0}
    xs = np.asarray(values, dtype=float) * 100
    idx = np.random.default_rng(rng_seed).integers(0, len(xs), size=(resamples, len(xs)))
    means = xs[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": round(float(xs.mean()), 2), "ci95": [round(float(lo), 2), round(float(hi), 2)], "cells": len(xs)}


def paired(a: dict[Cell, float], b: dict[Cell, float], resamples: int = RESAMPLES, rng_seed: int = RNG_SEED) -> dict:
    """a - b over the cells both played, in percentage points: the mean and its paired-bootstrap 95 % interval
    (one draw of cells serves both sides, so the interval is that of the per-cell differences' mean)."""
    common = sorted(set(a) & set(b))
    doc = bootstrap([a[c] - b[c] for c in common], resamples, rng_seed)
    return {"mean_diff": doc["mean"], "ci95": doc["ci95"], "cells": doc["cells"]}


def calibration_cells(runs: list[dict], split: str, start: str) -> dict[str, dict[Cell, float]]:
    """method -> (task, seed) -> success from the case's ``start`` (``with_deviation`` or ``removed``)."""
    out: dict[str, dict[Cell, float]] = {}
    for run in runs:
        res = (run.get("calibration") or {}).get(split) or {}
        for task, outcome in (res.get(start) or {}).get("tasks", {}).items():
            out.setdefault(run["method"], {})[(task, run["seed"])] = float(outcome["success"])
    return out


def calibration_document(runs: list[dict], resamples: int = RESAMPLES, rng_seed: int = RNG_SEED) -> dict | None:
    """The calibration analysis (the paper's Figures 4-5) per method, on the first split that has cases: success
    from the deviated history, with the deviated action removed, and the paired drop (removed - with); and
    STeCa's drop minus each other method's, paired over the same (case, seed) cells. None without cases."""
    splits = [s for run in runs for s, res in (run.get("calibration") or {}).items() if res.get("cases")]
    if not splits:
        return None
    split = splits[0]
    with_dev, removed = calibration_cells(runs, split, "with_deviation"), calibration_cells(runs, split, "removed")
    drops = {m: {c: removed[m][c] - with_dev[m][c] for c in set(with_dev[m]) & set(removed.get(m, {}))}
             for m in with_dev}  # fmt: skip
    doc = {
        "split": split,
        "cases": max((len(cells) for cells in with_dev.values()), default=0),
        "methods": {
            m: {
                "with_deviation_success": bootstrap(list(with_dev[m].values()), resamples, rng_seed),
                "removed_success": bootstrap(list(removed.get(m, {}).values()), resamples, rng_seed),
                "drop": paired(removed.get(m, {}), with_dev[m], resamples, rng_seed),
            }
            for m in with_dev
        },
    }
    if "steca" in drops:
        doc["steca_drop_vs"] = {m: paired(drops["steca"], d, resamples, rng_seed) for m, d in drops.items()
                                if m != "steca"}  # fmt: skip
    return doc


def first_mode(runs: list[dict]) -> str | None:
    """The evaluation mode the table reports: the first of the runs' (greedy before sampled, as evaluated)."""
    return next((res["mode"] for run in runs for res in run["results"]), None)


def results_document(
    env: str,
    runs: list[dict],
    seeds: list[int],
    data: dict[str, float],
    minutes: float,
    *,
    reference: str = "steca",
    mode: str | None = None,
    resamples: int = RESAMPLES,
    rng_seed: int = RNG_SEED,
) -> dict:
    """The ``results/<env>.json`` document of the experiment's ``runs`` (``{"method", "seed", "results"}`` with
    per-task outcomes under each result's ``tasks``). ``paired`` compares ``reference`` with every other method
    (``<reference>_vs_<method>_unseen_success``: reference minus method); ``n_eval`` is the fewest tasks any
    (method, seed) run played on the split."""
    mode = mode or first_mode(runs)
    methods = list(dict.fromkeys(run["method"] for run in runs))
    success = {split: run_cells(runs, split, mode, "success") for split in ("seen", "unseen")}
    reward = run_cells(runs, "unseen", mode, "reward")
    n_eval = {}
    for split in ("seen", "unseen"):
        counts = [
            sum(1 for _, s in success[split].get(run["method"], {}) if s == run["seed"]) for run in runs
        ]  # fmt: skip
        n_eval[split] = min(counts) if counts else 0
    table = {
        m: {
            "seen_success": bootstrap(list(success["seen"][m].values()), resamples, rng_seed),
            "unseen_success": bootstrap(list(success["unseen"][m].values()), resamples, rng_seed),
            "unseen_reward": bootstrap(list(reward[m].values()), resamples, rng_seed),
        }
        for m in methods
    }
    comparisons = {}
    if reference in methods:
        for m in methods:
            if m != reference:
                unseen = success["unseen"]
                comparisons[f"{reference}_vs_{m}_unseen_success"] = paired(unseen[reference], unseen[m], resamples,
                                                                          rng_seed)  # fmt: skip
    doc = {
        "env": env,
        "seeds": list(seeds),
        "n_eval": n_eval,
        "mode": mode,
        "methods": table,
        "paired": comparisons,
        "data": data,
        "minutes": round(minutes, 1),
        "bootstrap": {"unit": "(task, seed) cell", "resamples": resamples, "rng_seed": rng_seed, "units": "pp"},
    }
    calibration = calibration_document(runs, resamples, rng_seed)
    if calibration:
        doc["calibration"] = calibration
    return doc


def _cell(c: dict | None, key: str = "mean") -> str:
    if not c or c.get(key) is None:
        return "–"
    lo, hi = c["ci95"]
    return f"{c[key]:.1f} [{lo:.1f}, {hi:.1f}]"


def headline_markdown(head: dict, labels: dict[str, str] | None = None) -> str:
    """``results/<env>.md``: the headline document as the README shows it (percentage points, 95 % CIs)."""
    name = {m: (labels or {}).get(m, m) for m in head["methods"]}
    lines = [
        f"{head['env']}: seeds {', '.join(map(str, head['seeds']))}; {head['n_eval']['seen']} seen + "
        f"{head['n_eval']['unseen']} unseen tasks per seed ({head.get('mode', '')}); {head['minutes']} min. "
        "Success and reward in %, 95 % bootstrap intervals over (task, seed) cells.",
        "",
        "| method | seen success | unseen success | unseen reward | STeCa − method, unseen success (paired) |",
        "|---|---|---|---|---|",
    ]
    for m, cells in head["methods"].items():
        vs = head["paired"].get(f"steca_vs_{m}_unseen_success")
        lines.append(f"| {name[m]} | {_cell(cells['seen_success'])} | {_cell(cells['unseen_success'])} | "
                     f"{_cell(cells['unseen_reward'])} | {_cell(vs, 'mean_diff')} |")  # fmt: skip
    data = head.get("data") or {}
    if data:
        lines += ["", "Data per build: " + ", ".join(f"{k.capitalize()} {v}" for k, v in data.items())]
    calib = head.get("calibration")
    if calib:
        lines += [
            "",
            f"Calibration analysis ({calib['split']}, {calib['cases']} case × seed cells): success % from the "
            "deviated history, with the deviated action removed, and the drop (removed − with).",
            "",
            "| method | with deviated action | deviated action removed | drop | STeCa's drop − method's |",
            "|---|---|---|---|---|",
        ]
        for m, cells in calib["methods"].items():
            vs = (calib.get("steca_drop_vs") or {}).get(m)
            lines.append(f"| {name.get(m, m)} | {_cell(cells['with_deviation_success'])} | "
                         f"{_cell(cells['removed_success'])} | {_cell(cells['drop'], 'mean_diff')} | "
                         f"{_cell(vs, 'mean_diff')} |")  # fmt: skip
    return "\n".join(lines) + "\n"
