"""The experiment's outputs: results.json, results.md (mean ± std per method and split) and PNG plots.

methods.png      average final reward and success per method, seen and unseen (error bars: std over seeds)
calibration.png  success from a history with the deviated action vs with it removed (Figures 4-5)
losses.png       training loss curves of every trained method and seed (read from their train logs)
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def _label(doc: dict, method: str) -> str:
    """The method's name in tables and plots, as the results document records it (from the method registry)."""
    return doc.get("labels", {}).get(method, method)


def _pm(mean: float, std: float, pct: bool = False) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if pct else f"{mean:.3f} ± {std:.3f}"


def markdown(doc: dict) -> str:
    """The table the README shows, plus the data and calibration analysis that explain it."""
    splits = sorted({row["split"] for row in doc["table"]}, key=lambda s: (s != "seen", s))
    modes = sorted({row["mode"] for row in doc["table"]})
    cell = {(r["method"], r["split"], r["mode"]): r for r in doc["table"]}
    lines = [f"Seeds: {', '.join(map(str, doc['seeds']))} · mean ± std over seeds · evaluation: {', '.join(modes)}", ""]
    head = ["method"] + [f"{s} reward" for s in splits] + [f"{s} success %" for s in splits]
    for mode in modes:
        if len(modes) > 1:
            lines.append(f"**{mode}**\n")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in doc["methods"]:
            row = [_label(doc, method)]
            for s in splits:
                c = cell.get((method, s, mode))
                row.append(_pm(c["reward_mean"], c["reward_std"]) if c else "–")
            for s in splits:
                c = cell.get((method, s, mode))
                row.append(_pm(c["success_mean"], c["success_std"], pct=True) if c else "–")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    calib = calibration_table(doc)
    if calib:
        lines += [
            "Calibration analysis (Figures 4-5): success % from a history holding the base agent's deviated action "
            "(cases: the first proposal `experiment.calibration.rule` judges deviated; summed over seeds)",
            "",
        ]
        lines += [
            "| method | split | cases | with deviated action | deviated action removed |",
            "|---|---|---|---|---|",
        ]
        for r in calib:
            lines.append(
                f"| {_label(doc, r['method'])} | {r['split']} | {r['cases']} | "
                f"{_pm(r['with_mean'], r['with_std'], True)} | {_pm(r['removed_mean'], r['removed_std'], True)} |"
            )
        lines.append("")
    b = doc["build"]
    lines += [
        f"Engine on {b.get('tasks', '?')} train tasks: {b['proposals']} proposals "
        f"({b['proposals_equal_expert']} equal to the expert action), "
        f"{b['deviated']} judged deviated, {b['first_deviations']} first deviations, "
        f"{b['reflections_ok']} reflections; "
        f"{b['rollouts']} rollouts (success {100 * (b['rollout_success'] or 0):.0f} %, explorations from the start "
        f"{100 * (b['exploration_success'] or 0):.0f} %).",
        "",
        "| dataset | rows | mean weight | min | max | base agent NLL/token |",
        "|---|---|---|---|---|---|",
    ]
    nll = doc.get("base_nll") or {}
    for name, w in doc["datasets"].items():
        lines.append(
            f"| {name} | {w['rows']} | {w['mean']:.3f} | {w['min']:.3f} | {w['max']:.3f} | {nll.get(name, '–')} |"
        )
    lines += ["", *training_lines(doc), *timing_lines(doc)]
    if not doc.get("complete", True):
        lines.append("**Incomplete run**: only the seeds listed at the top have finished.")
    return "\n".join(lines) + "\n"


def training_lines(doc: dict) -> list[str]:
    """Per trained method: rows (or DPO pairs), optimizer steps, final loss, seconds (means over seeds)."""
    by: dict[str, list[dict]] = {}
    for run in doc["runs"]:
        if run.get("train"):
            by.setdefault(run["method"], []).append(run["train"])
    if not by:
        return []
    lines = ["| trained method | rows / pairs | steps | final loss | train s |", "|---|---|---|---|---|"]
    for method, logs in by.items():
        rows = logs[0].get("rows", logs[0].get("pairs"))
        loss = [x["final_loss"] for x in logs if x.get("final_loss") is not None]
        shown = f"{statistics.fmean(loss):.3f}" if loss else "(DPO, see losses.png)"
        secs = statistics.fmean(x["train_seconds"] for x in logs)
        lines.append(f"| {_label(doc, method)} | {rows} | {logs[0]['steps']} | {shown} | {secs:.0f} |")
    return [*lines, ""]


def timing_lines(doc: dict) -> list[str]:
    """Measured wall time of the steps this run computed (cached steps cost ~0 s)."""
    kinds: dict[str, float] = {}
    for step in doc["steps"]:
        if step["status"] == "computed":
            kind = step["name"].split()[0]  # build | train | eval | calibration
            kinds[kind] = kinds.get(kind, 0.0) + step["seconds"]
    parts = ", ".join(f"{k} {v / 60:.1f}" for k, v in kinds.items())
    return [f"Wall time of this run: {doc['seconds'] / 60:.1f} min ({parts or 'all cached'}; minutes).", ""]


def calibration_table(doc: dict) -> list[dict]:
    cells: dict[tuple[str, str], dict] = {}
    for run in doc["runs"]:
        for split, res in (run.get("calibration") or {}).items():
            if not res.get("cases"):
                continue
            c = cells.setdefault((run["method"], split), {"cases": 0, "with": [], "removed": []})
            c["cases"] += res["cases"]  # over seeds: each seed_scope-all seed has its own base agent's cases
            c["with"].append(res["with_deviation"]["success_rate"])
            c["removed"].append(res["removed"]["success_rate"])
    out = []
    for (method, split), c in cells.items():
        row = {"method": method, "split": split, "cases": c["cases"]}
        for name in ("with", "removed"):
            xs = c[name]
            row[f"{name}_mean"] = statistics.fmean(xs)
            row[f"{name}_std"] = statistics.stdev(xs) if len(xs) > 1 else 0.0
        out.append(row)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_methods(doc: dict, path: Path) -> None:
    plt = _plt()
    mode = sorted({r["mode"] for r in doc["table"]})[0]
    splits = sorted({r["split"] for r in doc["table"]}, key=lambda s: (s != "seen", s))
    cell = {(r["method"], r["split"]): r for r in doc["table"] if r["mode"] == mode}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / max(1, len(doc["methods"]))
    for ax, metric, title in ((axes[0], "reward", "average final reward"), (axes[1], "success", "success rate")):
        for i, method in enumerate(doc["methods"]):
            xs = [j + (i - (len(doc["methods"]) - 1) / 2) * width for j in range(len(splits))]
            means = [cell[(method, s)][f"{metric}_mean"] if (method, s) in cell else 0 for s in splits]
            stds = [cell[(method, s)][f"{metric}_std"] if (method, s) in cell else 0 for s in splits]
            ax.bar(xs, means, width, yerr=stds, capsize=3, label=_label(doc, method))
        ax.set_xticks(range(len(splits)), splits)
        ax.set_title(f"{title} ({mode})")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_calibration(doc: dict, path: Path) -> None:
    rows = calibration_table(doc)
    if not rows:
        return
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    labels = [f"{_label(doc, r['method'])}\n{r['split']}" for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["with_mean"] for r in rows], 0.4, yerr=[r["with_std"] for r in rows],
           capsize=3, label="deviated action in history")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [r["removed_mean"] for r in rows], 0.4, yerr=[r["removed_std"] for r in rows],
           capsize=3, label="deviated action removed")  # fmt: skip
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_losses(doc: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    drawn = 0
    for run in doc["runs"]:
        log = Path(run["model"]) / "train_log.json"
        if not run.get("train") or not log.is_file():  # a method that trains nothing (the base agent)
            continue
        history = json.loads(log.read_text()).get("history") or []
        if history:
            ax.plot([h["step"] for h in history], [h["loss"] for h in history], alpha=0.8,
                    label=f"{_label(doc, run['method'])} s{run['seed']}")  # fmt: skip
            drawn += 1
    if drawn:
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (DPO: preference loss)")
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_headline(head: dict, path: Path, labels: dict[str, str] | None = None) -> None:
    """``results/<env>.png``: the headline document at a glance. Success per method with its bootstrap 95 %
    interval; STeCa minus each method on unseen tasks, paired (the goal line at +5 points); with calibration
    cases, each method's paired drop in success when the deviated action is left in its history."""
    plt = _plt()
    methods = list(head["methods"])
    name = {m: (labels or {}).get(m, m) for m in methods}
    calib = head.get("calibration")
    fig, axes = plt.subplots(1, 3 if calib else 2, figsize=(15 if calib else 10.5, 3.9))

    def bars(ax, cells: list[dict | None], offset: float, label: str, key: str = "mean") -> None:
        ys = [j + offset for j in range(len(cells))]
        xs = [c[key] if c and c[key] is not None else 0.0 for c in cells]
        lo = [x - c["ci95"][0] if c and c["ci95"][0] is not None else 0.0 for x, c in zip(xs, cells, strict=True)]
        hi = [c["ci95"][1] - x if c and c["ci95"][1] is not None else 0.0 for x, c in zip(xs, cells, strict=True)]
        err = [[max(0.0, v) for v in lo], [max(0.0, v) for v in hi]]
        ax.barh(ys, xs, 0.38 if offset else 0.6, xerr=err, capsize=2, label=label)  # fmt: skip

    ax = axes[0]
    bars(ax, [head["methods"][m]["unseen_success"] for m in methods], -0.2, "unseen")
    bars(ax, [head["methods"][m]["seen_success"] for m in methods], 0.2, "seen")
    ax.set_yticks(range(len(methods)), [name[m] for m in methods], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("success %\n(bootstrap 95 % CI over tasks x seeds)")
    ax.legend(fontsize=7)
    others = [m for m in methods if f"steca_vs_{m}_unseen_success" in head["paired"]]
    ax = axes[1]
    bars(ax, [head["paired"][f"steca_vs_{m}_unseen_success"] for m in others], 0.0, "", key="mean_diff")
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(5, color="tab:green", lw=0.8, ls="--", label="goal vs SFT: +5")
    ax.set_yticks(range(len(others)), [f"STeCa - {name[m]}" for m in others], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("unseen success difference, points\n(paired 95 % CI)")
    ax.legend(fontsize=7)
    if calib:
        ax = axes[2]
        cm = list(calib["methods"])
        bars(ax, [calib["methods"][m]["drop"] for m in cm], 0.0, "", key="mean_diff")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(cm)), [name.get(m, m) for m in cm], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(
            f"success lost to a deviated history, points\n({calib['cases']} case x seed cells, paired 95 % CI)"
        )
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{head['env']}: seeds {head['seeds']}, {head['n_eval']['unseen']} unseen + "
                 f"{head['n_eval']['seen']} seen tasks per seed, {head['minutes']} min", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(doc: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    (out / "results.md").write_text(markdown(doc))
    plot_methods(doc, out / "methods.png")
    plot_calibration(doc, out / "calibration.png")
    plot_losses(doc, out / "losses.png")
