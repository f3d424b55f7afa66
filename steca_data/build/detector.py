"""How good is the deviation rule? Precision, recall and F1 against the planner's ground truth.

Read from a build's cache alone: the last build's verdicts (``deviations``, with the score keys of the two
values each compares), their labels (``plan_labels``) and the rollouts behind the values. The rule is
re-applied, ``Q[t] - V[t-1] < delta``, with each value the mean of its *first n* rollouts by sample index —
what a build with ``rollouts.n = n`` would have computed, since seeds are per (prefix, sample index) — for
n = 1 .. the rollouts that exist, and at full n for a sweep of delta. No rollout is computed.

Judged: proposals that differ from the expert's action (the rule never flags the others). Positive: the
planner says the action is a detour or a dead end (``core.ground_truth.is_bad``).
"""

from __future__ import annotations

from dataclasses import dataclass

from steca_data.core.ground_truth import is_bad

DELTAS = (-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class Judged:
    """One judged proposal: its label and the outcomes (by sample index) of the two prefixes compared."""

    bad: bool
    proposal: list[float]
    expert_prev: list[float]


@dataclass(frozen=True)
class Quality:
    n: int
    delta: float
    judged: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        wrong = self.fp + self.fn
        return 2 * self.tp / (2 * self.tp + wrong) if self.tp + wrong else None

    def as_dict(self) -> dict:
        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {"n": self.n, "delta": self.delta, "judged": self.judged, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "tn": self.tn, "precision": rounded(self.precision), "recall": rounded(self.recall),
                "f1": rounded(self.f1)}  # fmt: skip


def quality(judged: list[Judged], n: int, delta: float) -> Quality:
    """The rule's confusion counts with values from the first ``n`` rollouts, over proposals with that many."""
    tp = fp = fn = tn = 0
    count = 0
    for j in judged:
        if len(j.proposal) < n or len(j.expert_prev) < n:
            continue
        count += 1
        flagged = sum(j.proposal[:n]) / n - sum(j.expert_prev[:n]) / n < delta
        tp += flagged and j.bad
        fp += flagged and not j.bad
        fn += not flagged and j.bad
        tn += not flagged and not j.bad
    return Quality(n, delta, count, tp, fp, fn, tn)


def load_judged(con) -> tuple[list[Judged], float | None]:
    """The judged proposals of the last build with labels, and the build's delta (None: no labels)."""
    has = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "plan_labels" not in has or not con.execute("SELECT count(*) FROM plan_labels").fetchone()[0]:
        return [], None
    rows = con.execute(
        """SELECT label, proposal_score_key, expert_score_key, delta FROM labelled_deviations
           WHERE trim(proposed_action) <> trim(expert_action) AND label IS NOT NULL ORDER BY task_id, step"""
    ).fetchall()
    keys = sorted({k for r in rows for k in r[1:3] if k})
    outcomes = dict(
        con.execute(
            "SELECT score_key, list(outcome_reward ORDER BY sample_index) FROM rollouts "
            "WHERE score_key IN (SELECT unnest(?)) GROUP BY score_key",
            [keys],
        ).fetchall()
    )
    judged = [
        Judged(is_bad(label), list(outcomes.get(q, [])), list(outcomes.get(v, [])))
        for label, q, v, _ in rows
        if q and v
    ]
    delta = rows[0][3] if rows else None
    return judged, delta


def detector_summary(judged: list[Judged], delta: float) -> dict:
    """P/R/F1 by n at ``delta`` (n = 1 .. the most rollouts every judged value has) and by delta at that n."""
    full = min((min(len(j.proposal), len(j.expert_prev)) for j in judged), default=0)
    by_n = [quality(judged, n, delta).as_dict() for n in range(1, full + 1)]
    deltas = sorted({*DELTAS, delta})
    by_delta = [quality(judged, full, d).as_dict() for d in deltas] if full else []
    bad = sum(j.bad for j in judged)
    # the floor a rule must beat: flagging every judged proposal (precision = the share of bad ones, recall 1)
    flag_all = round(2 * bad / (bad + len(judged)), 4) if judged else None
    return {"delta": delta, "n_max": full, "by_n": by_n, "by_delta": by_delta, "bad": bad, "judged": len(judged),
            "flag_all_f1": flag_all}  # fmt: skip


def plot_detector(plt, summary: dict, path) -> None:
    """Left: precision / recall / F1 by rollouts n at the build's delta; right: by delta at the largest n."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, rows, x in ((left, summary["by_n"], "n"), (right, summary["by_delta"], "delta")):
        for metric in ("precision", "recall", "f1"):
            points = [(r[x], r[metric]) for r in rows if r[metric] is not None]
            ax.plot([p for p, _ in points], [v for _, v in points], marker="o", label=metric)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    left.set_xlabel("Monte Carlo rollouts per value (first n of those stored)")
    left.set_ylabel("against the planner's labels")
    left.set_title(f"delta = {summary['delta']:g}")
    right.set_xlabel("delta")
    right.set_title(f"n = {summary['n_max']}")
    for ax in (left, right):
        if summary["flag_all_f1"] is not None:
            ax.axhline(summary["flag_all_f1"], color="grey", linestyle=":", label="F1 of flagging all")
    left.legend()
    fig.suptitle(f"Deviation rule vs ground truth: {summary['judged']} judged proposals, {summary['bad']} bad")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
