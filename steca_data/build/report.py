"""``steca-data report``: plots people would rather see than read, straight from a build's cache.

- step_reward_vs_remaining.png  mean MC step reward of expert prefixes by steps remaining (paper Fig. 3:
                                it should rise toward completion)
- deviation_positions.png       where first deviations happen (absolute step and relative position)
- dataset_sizes.png             rows per built dataset
- detector_quality.png          precision / recall / F1 of the deviation rule against the planner's labels, by
                                rollouts n and by delta (builds with ``labels.planner: true``; ``build.detector``)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb

from steca_data.build.detector import detector_summary, load_judged, plot_detector
from steca_data.core.damage import reading
from steca_data.core.outputs import mark


def _mean_ci(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def _plot_step_rewards(plt, by_remaining: dict[int, list[float]], scored: int, listed: int, out_dir: Path,
                       summary: dict) -> None:  # fmt: skip
    """The paper's Figure 3: mean MC reward of expert prefixes by steps remaining (it should rise)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    if by_remaining:
        xs = sorted(by_remaining)
        stats = [_mean_ci(by_remaining[x]) for x in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[c for _, c in stats], marker="o", capsize=3)
        summary["step_reward_by_remaining"] = {x: round(m, 4) for x, (m, _) in zip(xs, stats, strict=True)}
    ax.invert_xaxis()
    ax.set_xlabel("steps remaining in the expert trajectory")
    ax.set_ylabel("Monte Carlo step reward (mean, 95% CI)")
    if scored < listed:  # rollouts.scope: first_deviation (or an unfinished build): a biased sample
        ax.set_title(f"Expert step rewards: {scored} of {listed} prefixes scored\n(rollouts.scope: all for the curve)")
    else:
        ax.set_title("Expert step rewards rise toward completion")
    ax.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    fig.savefig(out_dir / "step_reward_vs_remaining.png", dpi=120)
    plt.close(fig)
    summary["plots"].append("step_reward_vs_remaining.png")


def write_report(build_dir: Path, out_dir: Path | None = None) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = out_dir or build_dir / "report"
    con = duckdb.connect(str(build_dir / "cache.duckdb"), read_only=True)
    summary: dict = {"plots": []}
    try:
        query = "SELECT steps_remaining, reward, n FROM expert_step_rewards ORDER BY steps_remaining"
        rows = con.execute(query).fetchall()
        scored, listed = sum(n > 0 for _, _, n in rows), len(rows)
        by_remaining: dict[int, list[float]] = {}
        for remaining, reward, n in rows:
            if n > 0:
                by_remaining.setdefault(int(remaining), []).append(float(reward))
        deviations = con.execute(
            "SELECT d.step, s.num_steps FROM deviations d JOIN (SELECT task_id, max(step) AS num_steps "
            "FROM scored_prefixes WHERE kind = 'expert' GROUP BY 1) s USING (task_id) WHERE d.first"
        ).fetchall()
        judged = con.execute("SELECT count(DISTINCT task_id) FROM deviations").fetchone()[0]
        labelled, delta = load_judged(con)
    finally:
        con.close()

    out_dir.mkdir(parents=True, exist_ok=True)  # only once the cache has answered: a failure creates nothing
    mark(out_dir, "report")
    summary["expert_prefixes_scored"] = [scored, listed]
    _plot_step_rewards(plt, by_remaining, scored, listed, out_dir, summary)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    if deviations:
        steps = [s for s, _ in deviations]
        left.hist(steps, bins=range(1, max(steps) + 2), align="left", rwidth=0.8)
        right.hist([s / n for s, n in deviations], bins=10, range=(0, 1), rwidth=0.9)
    left.set_xlabel("step t of the first deviation")
    left.set_ylabel("tasks")
    right.set_xlabel("relative position t / m")
    fig.suptitle(f"First deviations: {len(deviations)} of {judged} walked tasks")
    fig.tight_layout()
    fig.savefig(out_dir / "deviation_positions.png", dpi=120)
    plt.close(fig)
    summary["plots"].append("deviation_positions.png")
    summary["first_deviations"] = len(deviations)
    summary["walked_tasks"] = judged

    sizes = {}
    if (build_dir / "dataset" / "dataset_dict.json").is_file():
        from datasets import load_from_disk

        with reading(build_dir / "dataset", "the saved dataset", "rebuild it (`steca-data build`)"):
            sizes = {name: len(ds) for name, ds in load_from_disk(str(build_dir / "dataset")).items()}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(list(sizes), list(sizes.values()))
    for i, v in enumerate(sizes.values()):
        ax.annotate(str(v), (i, v), ha="center", va="bottom")
    ax.set_ylabel("rows")
    ax.set_title("Dataset sizes")
    fig.tight_layout()
    fig.savefig(out_dir / "dataset_sizes.png", dpi=120)
    plt.close(fig)
    summary["plots"].append("dataset_sizes.png")
    summary["dataset_sizes"] = sizes
    if delta is not None:
        summary["detector"] = detector_summary(labelled, delta)
        plot_detector(plt, summary["detector"], out_dir / "detector_quality.png")
        summary["plots"].append("detector_quality.png")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
