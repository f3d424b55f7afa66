"""Issue 28's improvement attempts for STeCa, judged on the dev split only: one table from their experiment dirs.

Each attempt is a run of ``recipes/experiment-twc-dev.yaml`` with one change (``--set``) and its own
``experiment.out``; the first (the recipe as it is) also trains RFT. Every attempt's STeCa is compared, paired over
the same 100 dev tasks, with SFT (the base agent), RFT and the first attempt's STeCa.

    python benchmarks/twc_dev_attempts.py /work/runs/dev base eta0.01 brief self with-expert \\
        --json results/twc-dev.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steca_train.results import bootstrap, paired, run_cells


def attempts_document(root: Path, names: list[str], split: str = "dev") -> dict:
    """Per attempt: its changes, STeCa's dev success and its paired differences (percentage points)."""
    runs = {name: json.loads((root / name / "results.json").read_text()) for name in names}
    first = runs[names[0]]
    mode = first["runs"][0]["results"][0]["mode"]

    def cells(name: str, method: str) -> dict:
        return run_cells(runs[name]["runs"], split, mode, "success")[method]

    sft, rft, reference = cells(names[0], "sft"), cells(names[0], "rft"), cells(names[0], "steca")
    doc = {"split": split, "mode": mode, "tasks": len(sft), "sft": bootstrap(list(sft.values())),
           "rft": bootstrap(list(rft.values())), "attempts": {}}  # fmt: skip
    for name in names:
        steca = cells(name, "steca")
        doc["attempts"][name] = {
            "data_fingerprint": runs[name]["data_fingerprint"],
            "steca": bootstrap(list(steca.values())),
            "vs_sft": paired(steca, sft),
            "vs_rft": paired(steca, rft),
            f"vs_{names[0]}": paired(steca, reference),
        }
    return doc


def _cell(c: dict, key: str = "mean") -> str:
    return f"{c[key]:+.1f} [{c['ci95'][0]:+.1f}, {c['ci95'][1]:+.1f}]" if key == "mean_diff" else f"{c[key]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="The attempts' output.dir (each attempt in <root>/<name>).")
    parser.add_argument("names", nargs="+", help="Attempt folders, the reference (the recipe unchanged) first.")
    parser.add_argument("--json", type=Path, help="Write the document here.")
    args = parser.parse_args()
    doc = attempts_document(args.root, args.names)
    first = args.names[0]
    print(f"{doc['tasks']} {doc['split']} tasks, {doc['mode']}: SFT {_cell(doc['sft'])} %, RFT {_cell(doc['rft'])} %")
    print(f"| attempt | STeCa success % | − SFT | − RFT | − {first} |")
    print("|---|---|---|---|---|")
    for name, a in doc["attempts"].items():
        print(f"| {name} | {_cell(a['steca'])} | {_cell(a['vs_sft'], 'mean_diff')} | "
              f"{_cell(a['vs_rft'], 'mean_diff')} | {_cell(a[f'vs_{first}'], 'mean_diff')} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
