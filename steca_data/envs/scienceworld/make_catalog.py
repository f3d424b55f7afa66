"""Regenerate ``catalog.json`` (a maintainer's tool; task listing reads the JSON and never starts a JVM).

    python -m steca_data.envs.scienceworld.make_catalog ETO_CHECKOUT

Reads the task names, variation counts and train/dev/test variation ranges from the ScienceWorld JAR,
and ETO's split files (``eval_agent/data/sciworld/{train,dev,test}_indices.json`` and ``max_steps.json``
of github.com/Yifan-Song793/ETO, commit a2fc5da) for ETO's variation lists and per-task step limits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ETO_COMMIT = "a2fc5da38f8d00cfaf3f9b6370d586eebaf72904"
# ETO leaves six task types out; their limits are ours: twice variation 0's gold path, rounded up to 10
# (measure-melting-point-unknown-substance takes the known-substance limit)
OWN_LIMITS = {
    "measure-melting-point-unknown-substance": 120,
    "inclined-plane-determine-angle": 110,
    "inclined-plane-friction-named-surfaces": 110,
    "inclined-plane-friction-unnamed-surfaces": 360,
    "mendelian-genetics-known-plant": 260,
    "mendelian-genetics-unknown-plant": 260,
}


def _range(values: list[int]) -> list[int]:
    if values != list(range(values[0], values[-1] + 1)):
        raise ValueError("a fold that is not a contiguous range of variations")
    return [values[0], values[-1] + 1]


def build(eto: Path) -> dict:
    from scienceworld.constants import TASKS
    from scienceworld.utils import infer_task

    from steca_data.envs.scienceworld.backend import launch

    data = eto / "eval_agent" / "data" / "sciworld"
    limits = {infer_task(k): v for k, v in json.loads((data / "max_steps.json").read_text()).items()}
    gateway = launch("1g")
    try:
        server = gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
        tasks = []
        for entry in TASKS:
            name = entry["task_name"]
            server.load(name, 0, "", False)
            tasks.append(
                {
                    "name": name,
                    "id": entry["task_id"],
                    "title": f"{entry['topic']}: {entry['task']}",
                    "variations": int(server.getTaskMaxVariations(name)),
                    "folds": {
                        "train": _range(list(server.getVariationsTrain())),
                        "dev": _range(list(server.getVariationsDev())),
                        "test": _range(list(server.getVariationsTest())),
                    },
                    "step_limit": limits.get(name, OWN_LIMITS.get(name)),
                    "step_limit_source": "eto" if name in limits else "steca-data",
                }
            )
    finally:
        gateway.shutdown()
    eto_folds = {
        fold: [[infer_task(name), int(v)] for name, v in json.loads((data / f"{fold}_indices.json").read_text())]
        for fold in ("train", "dev", "test")
    }
    return {
        "about": (
            "ScienceWorld task types with their train/dev/test variation ranges (from the scienceworld JAR) "
            "and ETO's variation lists and per-task step limits (Song et al. 2024, 'Trial and Error: "
            "Exploration-Based Trajectory Optimization for LLM Agents', "
            f"github.com/Yifan-Song793/ETO @ {ETO_COMMIT[:7]})."
        ),
        "eto_commit": ETO_COMMIT,
        "tasks": tasks,
        "eto": eto_folds,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("catalog.json")
    catalog = build(Path(sys.argv[1]))
    text = json.dumps(catalog, indent=1)
    out.write_text(text + "\n")
    print(f"wrote {out} ({len(catalog['tasks'])} task types)")
