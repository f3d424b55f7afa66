"""Do a build's outputs agree? ``dataset/``, ``parquet/`` and the card must hold the same datasets with the
same row counts, made from the same recipe (the card's recipe fingerprint is in every row's provenance).

Outputs are switched as one unit (``build.switch``), so disagreement means a copy from elsewhere, a hand
edit, or a build older than the switch; ``inspect`` reports the first problem found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from steca_data.build.switch import pending

_FINGERPRINT = re.compile(r"recipe fingerprint `([0-9a-f]+)`")
_ROW = re.compile(r"^\| ([A-Za-z0-9_.-]+) \| (\d+) \|")


def card_facts(card: str) -> tuple[str | None, dict[str, int]]:
    """(recipe fingerprint, rows per dataset) as the dataset card states them."""
    fingerprint = _FINGERPRINT.search(card)
    section = card.split("## Datasets", 1)[1].split("\n## ", 1)[0] if "## Datasets" in card else ""
    counts = {m[1]: int(m[2]) for line in section.splitlines() if (m := _ROW.match(line))}
    return (fingerprint[1] if fingerprint else None), counts


def _parquet_facts(folder: Path) -> dict[str, tuple[int, str | None]]:
    """Rows and the first row's recipe fingerprint of each parquet file, read from metadata and one row."""
    import pyarrow.parquet as pq

    facts = {}
    for path in sorted(folder.glob("*.parquet")):
        table = pq.ParquetFile(path)
        first = table.read_row_group(0).slice(0, 1).to_pylist() if table.metadata.num_rows else []
        facts[path.stem] = (table.metadata.num_rows, _row_fingerprint(first[0]) if first else None)
    return facts


def _row_fingerprint(row: dict) -> str | None:
    provenance = row.get("provenance")
    if isinstance(provenance, str):
        provenance = json.loads(provenance)
    return (provenance or {}).get("recipe_hash")


def _compare(what: str, counts: dict[str, int], reference: dict[str, int], label: str) -> str | None:
    if set(counts) != set(reference):
        return f"{what} holds datasets {sorted(counts)}, {label} {sorted(reference)}"
    for name, n in reference.items():
        if counts[name] != n:
            return f"{name}: {what} has {counts[name]} rows, {label} {n}"
    return None


def output_problem(build: Path, dd) -> str | None:
    """The first disagreement between the dataset ``dd`` (loaded from ``build/dataset``), parquet and card."""
    if pending(build):
        return "an output switch was interrupted; run the build again to finish it"
    card_path = build / "README.md"
    if not card_path.is_file():
        return "no dataset card (README.md): the outputs are incomplete; run the build again"
    fingerprint, card_counts = card_facts(card_path.read_text(errors="replace"))
    counts = {name: len(ds) for name, ds in dd.items()}
    problem = _compare("dataset/", counts, card_counts, "the card")
    if problem:
        return problem
    if (build / "parquet").is_dir():
        parquet = _parquet_facts(build / "parquet")
        problem = _compare("parquet/", {k: v[0] for k, v in parquet.items()}, card_counts, "the card")
        if problem:
            return problem
        stale = [k for k, (_, fp) in parquet.items() if fp and fingerprint and fp != fingerprint]
        if stale:
            return (
                f"parquet/{stale[0]}.parquet was built from recipe {parquet[stale[0]][1]}, the card from {fingerprint}"
            )
    for name, ds in dd.items():
        row_fp = _row_fingerprint(ds[0]) if len(ds) else None
        if row_fp and fingerprint and row_fp != fingerprint:
            return f"dataset/{name} was built from recipe {row_fp}, the card from {fingerprint}"
    return None
