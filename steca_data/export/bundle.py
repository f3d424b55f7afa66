"""What one export format produces, before anything is written: splits, files and what the card says.

Formats only assemble a ``Bundle``; ``writer`` turns it into bytes. Keeping the two apart is what makes
every format deterministic in the same way (same rows in the same order, same writer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Features, List, Value

MESSAGE = {"role": Value("string"), "content": Value("string")}
MESSAGES = List(MESSAGE)


def columns(dtype: str, *names: str) -> dict:
    """Arrow features for several columns of one type."""
    return {name: Value(dtype) for name in names}


# every per-step export row names where it comes from the same way
ROW_ID = {"id": Value("string"), "task_id": Value("string"), "step": Value("int64")}


@dataclass
class Split:
    """One split of the exported DatasetDict: rows (already in their final order) and explicit features."""

    rows: list[dict]
    features: Features


@dataclass
class Bundle:
    """An export, ready to write."""

    format: str
    title: str
    consumer: str  # who reads it, e.g. "TRL SFTTrainer"
    splits: dict[str, Split] = field(default_factory=dict)  # written as dataset/ + parquet/
    files: dict[str, list[dict]] = field(default_factory=dict)  # written as JSON lists, e.g. "expert.json"
    contents: list[str] = field(default_factory=list)  # card: one bullet per column / file
    notes: list[str] = field(default_factory=list)  # card: representation choices, caveats
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out
    usage: str = ""  # card: a short Python snippet

    def counts(self) -> dict[str, int]:
        return {**{name: len(s.rows) for name, s in self.splits.items()}, **{n: len(r) for n, r in self.files.items()}}

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
