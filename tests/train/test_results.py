"""results/<env>.json from the experiment's runs: the paired bootstrap over (task, seed) cells and the shape."""

from __future__ import annotations

import json

from steca_train.results import bootstrap, headline_markdown, paired, results_document

SEEDS = [0, 1, 2]
TASKS = [f"t{i}" for i in range(100)]


def _run(method: str, seed: int, success, reward=None) -> dict:
    """One (method, seed) run as the experiment records it: per split, each task's success and reward."""
    results = []
    for split in ("seen", "unseen"):
        tasks = {
            t: {"success": float(success(t, seed)), "reward": float((reward or success)(t, seed))} for t in TASKS
        }  # fmt: skip
        results.append({"split": split, "mode": "sampled T=1", "success_rate": 0.0, "tasks": tasks})
    return {"method": method, "seed": seed, "results": results}


def _runs(methods: dict) -> list[dict]:
    return [_run(m, s, f) for s in SEEDS for m, f in methods.items()]


def test_a_known_difference_gives_an_interval_that_excludes_zero():
    a = {(t, s): float(i % 2) for s in SEEDS for i, t in enumerate(TASKS)}  # 50 % success
    b = {(t, s): float(i % 4 == 0) for s in SEEDS for i, t in enumerate(TASKS)}  # 25 %, on a subset of a's
    doc = paired(a, b)
    assert doc["mean_diff"] == 25.0 and doc["cells"] == 300
    lo, hi = doc["ci95"]
    assert 0 < lo < 25 < hi < 50


def test_identical_methods_give_no_difference_and_a_point_interval():
    a = {(t, s): float((i + s) % 3 == 0) for s in SEEDS for i, t in enumerate(TASKS)}
    assert paired(a, dict(a)) == {"mean_diff": 0.0, "ci95": [0.0, 0.0], "cells": 300}


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    values = [float(i % 3 == 0) for i in range(300)]
    first, again = bootstrap(values), bootstrap(values)
    assert first == again
    assert first["ci95"][0] < first["mean"] == 33.33 < first["ci95"][1]
    assert bootstrap([]) == {"mean": None, "ci95": [None, None], "cells": 0}


def test_the_document_has_the_issues_shape():
    methods = {
        "sft": lambda t, s: int(t[1:]) % 4 == 0,
        "other": lambda t, s: int(t[1:]) % 4 == 0,
        "steca": lambda t, s: int(t[1:]) % 2 == 0,
    }
    data = {"dc": 10, "de": 20, "ds": 5}
    doc = results_document("twc", _runs(methods), SEEDS, data, 12.34)
    assert set(doc) >= {"env", "seeds", "n_eval", "methods", "paired", "data", "minutes"}
    assert doc["env"] == "twc" and doc["seeds"] == SEEDS and doc["data"] == data and doc["minutes"] == 12.3
    assert doc["n_eval"] == {"seen": 100, "unseen": 100}
    assert set(doc["methods"]) == set(methods)
    for cells in doc["methods"].values():
        assert set(cells) == {"seen_success", "unseen_success", "unseen_reward"}
        for cell in cells.values():
            assert cell["cells"] == 300 and cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    assert doc["methods"]["steca"]["unseen_success"]["mean"] == 50.0
    assert set(doc["paired"]) == {"steca_vs_sft_unseen_success", "steca_vs_other_unseen_success"}
    vs = doc["paired"]["steca_vs_sft_unseen_success"]
    assert vs["mean_diff"] == 25.0 and vs["ci95"][0] > 0
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert results_document("twc", _runs(methods), SEEDS, data, 12.34) == doc  # deterministic
    assert "calibration" not in doc  # no cases were played
    table = headline_markdown(doc, {"steca": "STeCa"}).splitlines()
    assert "| STeCa | " in "\n".join(table) and "Data per build: Dc 10, De 20, Ds 5" in table
    (sft_row,) = [line for line in table if line.startswith("| sft |")]
    assert sft_row.endswith(f"| 25.0 [{vs['ci95'][0]:.1f}, {vs['ci95'][1]:.1f}] |")


def test_the_calibration_section_pairs_each_methods_drop_over_cases_and_seeds():
    """STeCa loses nothing when the deviated action is in its history; SFT loses half its successes."""
    cases = TASKS[:40]

    def run(method: str, seed: int, with_dev, removed) -> dict:
        starts = {name: {"tasks": {t: {"success": float(f(i)), "reward": 0.0} for i, t in enumerate(cases)}}
                  for name, f in (("with_deviation", with_dev), ("removed", removed))}  # fmt: skip
        doc = _run(method, seed, lambda t, s: 1)
        doc["calibration"] = {"unseen": {"cases": len(cases), **starts}}
        return doc

    runs = [run("sft", s, lambda i: i % 4 == 0, lambda i: i % 2 == 0) for s in SEEDS]
    runs += [run("steca", s, lambda i: i % 2 == 0, lambda i: i % 2 == 0) for s in SEEDS]
    calib = results_document("twc", runs, SEEDS, {}, 1.0)["calibration"]
    assert calib["split"] == "unseen" and calib["cases"] == 120
    sft, steca = calib["methods"]["sft"], calib["methods"]["steca"]
    assert sft["with_deviation_success"]["mean"] == 25.0 and sft["removed_success"]["mean"] == 50.0
    assert sft["drop"]["mean_diff"] == 25.0 and sft["drop"]["ci95"][0] > 0
    assert steca["drop"] == {"mean_diff": 0.0, "ci95": [0.0, 0.0], "cells": 120}
    vs = calib["steca_drop_vs"]["sft"]
    assert vs["mean_diff"] == -25.0 and vs["ci95"][1] < 0
    assert "| sft | 25.0 [" in headline_markdown(results_document("twc", runs, SEEDS, {}, 1.0))
