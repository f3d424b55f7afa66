"""Write a ``Bundle`` into the output directory, atomically and byte-for-byte reproducibly.

Everything goes to a sibling temp directory first and is switched into place at the end (the old export
moved aside, the new one renamed in, the old one removed), so a failed or killed export never leaves half a
dataset where a consumer might read it. The folder carries steca-data's output marker: a later
``--overwrite`` may replace it, and nothing else. Datasets are written with one shard
per split (an empty split still gets its schema); JSON files with a fixed indent and key order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from steca_data.core.outputs import mark, replace_dir

from .bundle import Bundle, Split


def _dataset(split: Split):
    from datasets import Dataset

    columns = {name: [row[name] for row in split.rows] for name in split.features}
    return Dataset.from_dict(columns, features=split.features)


def write_bundle(bundle: Bundle, card: str, out: Path) -> None:
    """Replace ``out`` with the bundle's datasets, files and card (the caller checked it may be replaced)."""
    from datasets import DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    tmp = out.parent / f".{out.name}.export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if bundle.splits:
            dd = DatasetDict({name: _dataset(split) for name, split in bundle.splits.items()})
            dd.save_to_disk(str(tmp / "dataset"), num_shards={name: 1 for name in dd})
            (tmp / "parquet").mkdir()
            for name, ds in dd.items():
                ds.to_parquet(str(tmp / "parquet" / f"{name}.parquet"))
        for name, records in bundle.files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        (tmp / "README.md").write_text(card)
        mark(tmp, "export")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
