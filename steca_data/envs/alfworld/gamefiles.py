"""Game folders on disk, in the official ALFWorld layout, for generated and downloaded data alike.

    <root>/<fold>/<task_type>-<Object>-<Mrecep>-<Parent>-<scene>/<trial>/{game.tw-pddl, traj_data.json}

with fold one of train, valid_seen, valid_unseen. The official download nests this under
``json_2.1.1/``; both roots are accepted. Like ALFWorld's own loader we skip movable-receptacle and
sliced-object games (its text engine does not support them) and games not marked solvable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FOLDS = ("train", "valid_seen", "valid_unseen")
GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"


@dataclass(frozen=True)
class GameRef:
    fold: str
    relpath: str  # folder of the game relative to <root>/<fold>
    task_type: str

    @property
    def task_id(self) -> str:
        return f"alfworld/{self.fold}/{self.relpath}"


def data_root(path: str | Path) -> Path:
    """The folder holding the fold folders (``json_2.1.1`` inside an official ALFWORLD_DATA tree)."""
    path = Path(path)
    nested = path / "json_2.1.1"
    return nested if nested.is_dir() and not (path / "train").is_dir() else path


def game_dir(root: str | Path, task_id: str) -> Path:
    prefix = "alfworld/"
    if not task_id.startswith(prefix):
        raise ValueError(f"not an ALFWorld task id: {task_id!r}")
    return data_root(root) / task_id[len(prefix) :]


OFFICIAL_FOLDS = (*FOLDS, "valid_train")  # the official download also has valid_train (not played here)


def parse_game_ref(ref: str) -> tuple[str | None, str] | None:
    """(fold, game folder inside the fold) from a record's ``game_file`` or ``id``; fold None when the
    reference names no fold (``<task>/<trial>``); None when it names no game at all.

    Accepts what public files write: ``[.../]json_2.1.1/<fold>/<task>/<trial>[/game.tw-pddl]`` (ETO and IPR
    write ``eval_agent/data/alfworld/json_2.1.1/...``, others ``data/json_2.1.1/...``), ``<fold>/<task>/<trial>``
    and steca's own task ids ``alfworld/<fold>/<task>/<trial>``.
    """
    parts = [p for p in ref.replace("\\", "/").split("/") if p and p != "."]
    if parts and parts[-1] in (GAME_FILE, TRAJ_FILE):
        parts = parts[:-1]
    if "json_2.1.1" in parts:
        parts = parts[len(parts) - parts[::-1].index("json_2.1.1") :]
    for i in range(len(parts) - 3, -1, -1):  # the last fold with a task folder and a trial after it
        if parts[i] in OFFICIAL_FOLDS:
            return parts[i], "/".join(parts[i + 1 :])
    if len(parts) >= 2 and "-" in parts[-2] and parts[-1].startswith("trial_"):
        return None, "/".join(parts[-2:])
    return None


def _solvable(game_file: Path) -> bool:
    # The flag sits near the end of a large JSON file; parse it only when the cheap check is inconclusive.
    with open(game_file, "rb") as f:
        f.seek(max(0, game_file.stat().st_size - 4096))
        tail = f.read()
    if b'"solvable": true' in tail:
        return True
    if b'"solvable": false' in tail:
        return False
    return bool(json.loads(game_file.read_text()).get("solvable"))


def find_games(root: str | Path, fold: str, task_types: set[str] | None = None) -> list[GameRef]:
    """Playable games of a fold, sorted by path (a stable order for task ids and splits)."""
    base = data_root(root) / fold
    if not base.is_dir():
        return []
    games = []
    for dirpath, _dirs, files in os.walk(base):
        if TRAJ_FILE not in files or GAME_FILE not in files:
            continue
        if "movable" in dirpath or "Sliced" in dirpath:
            continue
        folder = Path(dirpath)
        task_type = json.loads((folder / TRAJ_FILE).read_text())["task_type"]
        if task_types and task_type not in task_types:
            continue
        if not _solvable(folder / GAME_FILE):
            continue
        games.append(GameRef(fold, folder.relative_to(base).as_posix(), task_type))
    return sorted(games, key=lambda g: g.relpath)


def read_traj_data(folder: Path) -> dict:
    return json.loads((folder / TRAJ_FILE).read_text())


def write_game(folder: Path, game: dict, traj_data: dict) -> None:
    """Write both files; the game file last and atomically, so a half-written game is never found."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TRAJ_FILE).write_text(json.dumps(traj_data, indent=2))
    tmp = folder / (GAME_FILE + ".tmp")
    tmp.write_text(json.dumps(game))
    tmp.replace(folder / GAME_FILE)
