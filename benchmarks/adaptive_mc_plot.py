"""Plot adaptive Monte Carlo replays (``adaptive_mc.py --json``) of several builds side by side (issue 25).

    python benchmarks/adaptive_mc_plot.py LABEL=FILE.json [LABEL=FILE.json ...] --out adaptive_mc.png

Left: rollouts saved against fixed N, by agreement of the deviation verdicts with fixed N's, one line per
build (points: the confidence settings, labelled on n_min 1, solid; n_min 2 dashed); the shaded corner is
the target (>= 40 % fewer at >= 98 % agreement). Right, for builds with ground-truth labels: the F1 of the
verdicts against the labels, fixed N as a dotted line of the build's colour.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGET_SAVED, TARGET_AGREEMENT = 0.40, 0.98


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=FILE")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for item in args.runs:
        label, _, path = item.rpartition("=")  # labels may hold "=" (ε=0.2), paths rarely do
        if not path:
            parser.error(f"{item!r}: expected LABEL=FILE.json")
        runs.append((label, json.loads(Path(path).read_text())))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.axvspan(TARGET_SAVED * 100, 100, ymin=0, ymax=1, color="none")
    left.fill_between([TARGET_SAVED * 100, 100], TARGET_AGREEMENT * 100, 100.5, color="#d8f0d8", label="target")
    for i, (label, doc) in enumerate(runs):
        colour = f"C{i}"
        for n_min, style in ((1, "-"), (2, "--")):
            rows = sorted((r for r in doc["adaptive"] if r["n_min"] == n_min), key=lambda r: r["confidence"])
            if not rows:
                continue
            xs, ys = [r["saved"] * 100 for r in rows], [r["agreement"] * 100 for r in rows]
            left.plot(xs, ys, style, marker="o", color=colour, label=f"{label}, n_min {n_min}")
            for r, x, y in zip(rows, xs, ys, strict=True) if n_min == 1 else ():  # one set of labels is enough
                left.annotate(f"{r['confidence']:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
            if doc["fixed"].get("f1") is not None:
                right.plot([r["saved"] * 100 for r in rows], [r["f1"] for r in rows], style, marker="o", color=colour,
                           label=f"{label}, n_min {n_min}")  # fmt: skip
        if doc["fixed"].get("f1") is not None:
            right.axhline(doc["fixed"]["f1"], color=colour, linestyle=":", label=f"{label}, fixed N")
    left.set_xlabel("rollouts saved against fixed N (%)")
    left.set_ylabel("verdicts agreeing with fixed N (%)")
    left.set_title("adaptive Monte Carlo: cost and agreement (labels: confidence)")
    left.legend(fontsize=7, loc="center right")
    right.set_xlabel("rollouts saved against fixed N (%)")
    right.set_ylabel("F1 against the planner's labels")
    right.set_title("deviation verdicts against ground truth")
    right.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
