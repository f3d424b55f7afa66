"""The 518 scene-1 tasks that ``virtualhome-eval`` 0.1.1 ships: programs, graphs and symbolic goals.

Everything is read from the installed package (no download). Program texts and goals are small and cached
per process; a task's graph JSON is 20-26 ms to parse, so ``load_graphs`` is not cached here (the simulator
caches the built graph instead, which is what a session needs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DISTRIBUTION = "virtualhome-eval"
_DATASET = "dataset/programs_processed_precond_nograb_morepreconds"
_SUBDIR = "TrimmedTestScene1_graph/results_intentions_march-13-18"
_GOALS = "resources/virtualhome/task_state_LTL_formula_accurate.json"
_EQUIVALENCE = "resources/class_name_equivalence.json"

# `[WALK] <computer> (1.417)`: the number after the dot is the graph node id (the one before it numbers the
# program's distinct objects); `parse_script_line` wants `(417)`.
_INSTANCE = re.compile(r"\((\d+)\.(\d+)\)")
_LINE = re.compile(r"^\[(\w+)\]((?:\s*<[^>]+>\s*\(\d+\))*)\s*$")
_PARAM = re.compile(r"<([^>]+)>\s*\((\d+)\)")


@dataclass(frozen=True)
class ProgramStep:
    """One gold program line: the executor's action name and its (class name, node id) arguments."""

    action: str
    args: tuple[tuple[str, int], ...]

    def script_line(self) -> str:
        return f"[{self.action}]" + "".join(f" <{name}> ({node})" for name, node in self.args)


@dataclass(frozen=True)
class VHProgram:
    """A task as the dataset states it: ``file_id`` is the file stem without ``file`` (e.g. ``'1003_2'``)."""

    file_id: str
    title: str
    description: str
    steps: tuple[ProgramStep, ...]


def virtualhome_version() -> str:
    """``'virtualhome-eval 0.1.1'``: recorded in every trajectory; the data and the simulator come with it."""
    return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"


def package_root() -> Traversable:
    return resources.files("virtualhome_eval")


def _program_dir() -> Traversable:
    return package_root() / _DATASET / "executable_programs" / _SUBDIR


def _graph_dir() -> Traversable:
    return package_root() / _DATASET / "init_and_final_graphs" / _SUBDIR


def _file_key(file_id: str) -> tuple[int, int]:
    major, _, minor = file_id.partition("_")
    return int(major), int(minor or 0)


def parse_program(file_id: str, text: str) -> VHProgram:
    """Title (line 1), description (line 2), then ``[ACTION] <name> (k.id)`` lines, ids rewritten."""
    lines = text.split("\n")
    title = lines[0].strip()
    description = lines[1].strip() if len(lines) > 1 else ""
    steps = []
    for raw in lines[2:]:
        line = _INSTANCE.sub(r"(\2)", raw.strip())
        if not line:
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"file{file_id}: cannot parse program line {raw!r}")
        args = tuple((name.strip(), int(node)) for name, node in _PARAM.findall(m.group(2)))
        steps.append(ProgramStep(m.group(1).upper(), args))
    return VHProgram(file_id, title, description, tuple(steps))


@cache
def load_programs() -> dict[str, VHProgram]:
    """All programs of scene 1, keyed by file id, in numeric file-id order."""
    found = {}
    for entry in _program_dir().iterdir():
        name = entry.name
        if name.startswith("file") and name.endswith(".txt"):
            file_id = name[len("file") : -len(".txt")]
            found[file_id] = parse_program(file_id, entry.read_text())
    return {file_id: found[file_id] for file_id in sorted(found, key=_file_key)}


def load_graphs(file_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(init_graph, final_graph)`` of a task, each ``{"nodes": [...], "edges": [...]}``."""
    data = json.loads((_graph_dir() / f"file{file_id}.json").read_text())
    return data["init_graph"], data["final_graph"]


@cache
def load_vh_goals() -> dict[str, dict[str, Any]]:
    """virtualhome-eval's hand-checked goals (342 tasks): file id -> ``{"goal": [...], "actions": [...]}``."""
    data = json.loads((package_root() / _GOALS).read_text())
    return {file_id: entry["vh_goal"] for by_id in data["scene_1"].values() for file_id, entry in by_id.items()}


@cache
def load_name_equivalence() -> dict[str, list[str]]:
    return json.loads((package_root() / _EQUIVALENCE).read_text())
