"""STeCa's own VirtualHome test sets (``vh_seen_test.jsonl`` / ``vh_unseen_test.jsonl``, 247 rows each).

The rows come from the STeCa repository's history (see ``data/README.md``); a recipe may point
``env.steca_dir`` at its own copy instead. A row names its program file in the VirtualHome programs dataset
(``.../executable_programs/TrimmedTestScene{1..7}_graph/<subfolder>/<stem>.txt``, an absolute path on the
authors' machine: only the part after ``executable_programs/`` is read), and the task's initial graph is
``init_and_final_graphs/<scene>/<subfolder>/<stem>.json`` under the recipe's dataset directory.
virtualhome-eval ships only scene 1's ``results_intentions_march-13-18`` graphs, so with its dataset only
some rows are runnable: ``availability`` says which, and why the rest are not.

Rows are addressed by their position in the file (``row``), never by their ``id`` alone: the seen file has
ids 3 and 453 twice, the unseen file 57 (STeCa's script wrote both results to one file, the second
overwriting the first).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from steca_data.envs.virtualhome.data import VHProgram, package_root, parse_program

# recipe fold -> STeCa's file name
FILES = {"steca_seen": "vh_seen_test.jsonl", "steca_unseen": "vh_unseen_test.jsonl"}
ROWS = 247  # rows in each file (a test keeps the shipped copies at this size)
SOURCE = "WangHanLinHenry/STeCa@b2cc515b46e8444a8da6af735b23345fcf8d4d0f:dataset/"
# SHA-256 of the published files (uncompressed): a user's own copy is checked against them
SHA256 = {
    "vh_seen_test.jsonl": "3d7c3b3b3c818f3bea81d51a4f7d4119d0a2c79dc323f12c5cf179924ac529d0",
    "vh_unseen_test.jsonl": "1a98f14cce80c9b48151eaeaf8215857b5e246fbec4f272f08eaa1337067ea6f",
}
SHIPPED = Path(__file__).with_name("data")
_PROGRAMS = "programs_processed_precond_nograb_morepreconds"
_MARKER = "executable_programs/"

# why a row is not runnable
NO_GRAPH = "without an initial graph in the dataset directory"
EMPTY_GOAL = "with an empty goal under rule 'goal' (use rule 'steca')"
EMPTY_REVISED = "with an empty revised_graph (nothing for rule 'steca' to check)"


@dataclass(frozen=True)
class StecaRow:
    """One test task as STeCa's file states it (fields not used here are left out)."""

    fold: str
    row: int  # position in the file, 0-based: the identity (ids repeat)
    steca_id: str
    program: VHProgram  # title, description and the gold program by node id (``new_program_lines``)
    actions: tuple[str, ...]  # the gold program as STeCa's text actions (``action_list``)
    relpath: str  # "<scene>/<subfolder>/<stem>" under executable_programs/ and init_and_final_graphs/
    revised: dict[str, Any] = field(hash=False, compare=False)  # ``revised_graph``
    object_ids: dict[str, int] = field(hash=False, compare=False)  # ``object_id_dict``: name -> gold id

    @property
    def key(self) -> str:
        """``'017-3'``: row and id, unique in a file and readable."""
        return f"{self.row:03d}-{self.steca_id}"

    @property
    def scene_file_id(self) -> str | None:
        """virtualhome-eval's file id (``'1003_2'``) for scene 1's march-13-18 programs, whose goals it ships."""
        prefix = "TrimmedTestScene1_graph/results_intentions_march-13-18/file"
        return self.relpath[len(prefix) :] if self.relpath.startswith(prefix) else None


def _relpath(path: str) -> str:
    """The dataset-relative part of STeCa's absolute path (its script sliced a fixed number of characters)."""
    if _MARKER not in path or not path.endswith(".txt"):
        raise ValueError(f"path {path!r} names no file under {_MARKER}")
    return path.split(_MARKER, 1)[1][: -len(".txt")]


def parse_row(fold: str, row: int, data: dict[str, Any]) -> StecaRow:
    lines = [str(data["task"]), str(data["description"]), *map(str, data["new_program_lines"])]
    program = parse_program(f"{fold}/{row:03d}", "\n".join(lines))
    revised = data["revised_graph"]
    for part in ("nodes", "revised_nodes", "revised_add_edges"):
        if not isinstance(revised.get(part), list):
            raise ValueError(f"row {row}: revised_graph.{part} is not a list")
    return StecaRow(
        fold=fold,
        row=row,
        steca_id=str(data["id"]),
        program=program,
        actions=tuple(str(a) for a in data["action_list"]),
        relpath=_relpath(str(data["path"])),
        revised=revised,
        object_ids={str(k): int(v) for k, v in data.get("object_id_dict", {}).items()},
    )


def file_path(fold: str, steca_dir: str | None) -> Path:
    """The file a fold reads: ``<steca_dir>/<name>`` (plain or ``.gz``), else the shipped copy."""
    name = FILES[fold]
    if steca_dir is None:
        return SHIPPED / f"{name}.gz"
    base = Path(steca_dir)
    return base / name if (base / name).is_file() or not (base / f"{name}.gz").is_file() else base / f"{name}.gz"


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()


@cache
def load_rows(fold: str, steca_dir: str | None = None) -> tuple[StecaRow, ...]:
    """Every row of a fold's file, in file order. Raises ``ValueError`` naming the file on a bad row."""
    path = file_path(fold, steca_dir)
    rows = []
    for i, line in enumerate(read_text(path).splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(parse_row(fold, len(rows), json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i + 1}: not a STeCa test row ({exc})") from None
    return tuple(rows)


def file_digest(fold: str, steca_dir: str | None) -> str:
    return hashlib.sha256(read_text(file_path(fold, steca_dir)).encode()).hexdigest()


def dataset_root(dataset_dir: str | None) -> Path:
    """The folder holding ``init_and_final_graphs/``: ``dataset_dir`` itself or its
    ``programs_processed_precond_nograb_morepreconds/``; virtualhome-eval's copy by default."""
    if dataset_dir is None:
        return Path(str(package_root() / "dataset" / _PROGRAMS))
    base = Path(os.path.expanduser(dataset_dir))
    return base / _PROGRAMS if (base / _PROGRAMS / "init_and_final_graphs").is_dir() else base


def graph_file(root: Path, row: StecaRow) -> Path:
    return root / "init_and_final_graphs" / f"{row.relpath}.json"


def load_row_graphs(root: Path, row: StecaRow) -> tuple[dict[str, Any], dict[str, Any]]:
    data = json.loads(graph_file(root, row).read_text())
    return data["init_graph"], data["final_graph"]


@dataclass(frozen=True)
class Availability:
    """Which rows of a block can run here, and why the others cannot."""

    fold: str
    listed: int
    runnable: tuple[StecaRow, ...]
    missing: dict[str, int]  # reason -> rows
    missing_scenes: dict[str, int]  # "<scene>/<subfolder>" -> rows without a graph
    root: Path

    def summary(self) -> str:
        """One line for ``plan`` / ``eval``."""
        text = f"{len(self.runnable)} of {self.listed} STeCa {self.fold.removeprefix('steca_')} tasks runnable"
        if self.missing:
            why = "; ".join(f"{n} {reason}" for reason, n in sorted(self.missing.items()))
            text += f"; {why} ({self.root})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": f"{SOURCE}{FILES[self.fold]}",
            "listed": self.listed,
            "runnable": len(self.runnable),
            "not_runnable": dict(sorted(self.missing.items())),
            "without_graph_by_folder": dict(sorted(self.missing_scenes.items())),
            "dataset_dir": str(self.root),
        }


@cache
def goal_is_empty(root: Path, row: StecaRow) -> bool:
    """Whether rule 'goal' has nothing to check: virtualhome-eval's goal (scene 1) and the initial -> final
    graph difference without the character's own changes are both empty (reads the graph file, ~25 ms)."""
    from steca_data.envs.virtualhome.data import load_vh_goals
    from steca_data.envs.virtualhome.goals import goal_from_diff, goal_from_vh

    vh_goal = load_vh_goals().get(row.scene_file_id) if row.scene_file_id else None
    if vh_goal is not None and not goal_from_vh(vh_goal).empty:
        return False
    return goal_from_diff(*load_row_graphs(root, row)).empty


def availability(
    fold: str, start: int, count: int, steca_dir: str | None, dataset_dir: str | None, rule: str = "steca"
) -> Availability:
    """The block's rows that can run: their initial graph is in the dataset directory and, under rule 'goal',
    the rule has something to check (every row of the published files has a non-empty revised_graph)."""
    rows = load_rows(fold, steca_dir)[start : start + count]
    root = dataset_root(dataset_dir)
    runnable, missing, scenes = [], Counter(), Counter()
    for row in rows:
        if not graph_file(root, row).is_file():
            missing[NO_GRAPH] += 1
            scenes[row.relpath.rsplit("/", 1)[0]] += 1
        elif rule == "goal" and goal_is_empty(root, row):
            missing[EMPTY_GOAL] += 1
        elif rule == "steca" and not any(row.revised[part] for part in ("nodes", "revised_nodes", "revised_add_edges")):
            missing[EMPTY_REVISED] += 1
        else:
            runnable.append(row)
    return Availability(fold, len(rows), tuple(runnable), dict(missing), dict(scenes), root)
