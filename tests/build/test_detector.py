"""The deviation rule's quality against labels: confusion counts with the first n rollouts, and by delta."""

from __future__ import annotations

from steca_data.build.detector import Judged, detector_summary, quality


def test_first_n_rollouts_decide_and_counts_add_up():
    judged = [
        Judged(bad=True, proposal=[0.0, 1.0, 1.0], expert_prev=[1.0, 0.0, 1.0]),  # flagged at n=1 only
        Judged(bad=True, proposal=[0.0, 0.0, 0.0], expert_prev=[1.0, 0.0, 1.0]),  # flagged at every n
        Judged(bad=False, proposal=[1.0, 1.0, 0.0], expert_prev=[1.0, 1.0, 1.0]),  # flagged at n=3
        Judged(bad=False, proposal=[1.0, 1.0], expert_prev=[0.0, 1.0]),  # two rollouts only: not judged at n=3
    ]
    one, three = quality(judged, 1, 0.0), quality(judged, 3, 0.0)
    assert (one.tp, one.fp, one.fn, one.tn, one.judged) == (2, 0, 0, 2, 4)
    assert (one.precision, one.recall, one.f1) == (1.0, 1.0, 1.0)
    assert (three.tp, three.fp, three.fn, three.tn, three.judged) == (1, 1, 1, 0, 3)
    assert (three.precision, three.recall, three.f1) == (0.5, 0.5, 0.5)
    loose = quality(judged, 1, 0.5)  # delta 0.5 also flags a proposal that is merely no better
    assert loose.fp == 1 and loose.tp == 2
    summary = detector_summary(judged, 0.0)
    assert summary["n_max"] == 2 and [r["n"] for r in summary["by_n"]] == [1, 2]
    assert {r["delta"] for r in summary["by_delta"]} >= {-0.5, 0.0, 0.5} and summary["bad"] == 2
    assert summary["flag_all_f1"] == round(quality(judged, 1, 1.5).f1, 4) == 0.6667  # delta 1.5 flags all


def test_no_flags_no_precision():
    none = quality([Judged(bad=False, proposal=[1.0], expert_prev=[0.0])], 1, 0.0)
    assert none.precision is None and none.recall is None and none.f1 is None and none.tn == 1
