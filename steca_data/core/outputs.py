"""Where a command may write: one policy for every output path a user types (``--out``, ``--json``,
``output.dir``), checked before any work, so that nothing a user types deletes or changes their data.

A directory output is refused (``OutputPathError``, exit 2, one line) when it is empty or blank text, a file
(or below one), the current directory or one of its ancestors, the home folder or one of its ancestors,
the filesystem root, an ancestor of (or the same as) an input the command reads, or a steca-data build
directory that is not the command's own. An existing, non-empty directory is used only if steca-data wrote
it before: it carries ``MARKER`` (written into every output directory) naming the same kind of output, or,
for outputs written before the marker existed, it is recognisably ours (``_LEGACY``). Symlinks are
resolved first, so a link to a build is that build.

A file output (a JSON report) is refused when it is empty text, a directory, below a file, or an existing
file that is not a JSON document of the same kind that steca-data wrote (its ``signature`` keys).

``replace_dir`` switches a freshly written directory in for an old one: the old one is moved aside, the new
one renamed into place, then the old one removed, so a kill leaves one complete set (``recover_dir``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

MARKER = ".steca-output"


class OutputPathError(ValueError):
    """An output path that must not be written: the user's input, reported as one line (exit 2)."""


def _legacy_export(path: Path) -> bool:
    card = path / "README.md"
    return card.is_file() and "Exported by `steca-data export" in card.read_text(errors="replace")


def _legacy_schemas(path: Path) -> bool:
    return all(p.name.endswith(".schema.json") for p in path.iterdir())


def _legacy_model(path: Path) -> bool:
    """A model steca-train wrote (its train log), or one in a build's own ``models/`` folder."""
    return (path / "train_log.json").is_file() or is_build_dir(path.parent.parent) and path.parent.name == "models"


def _legacy_report(path: Path) -> bool:
    return all(p.suffix == ".png" or p.name == "summary.json" for p in path.iterdir())


def _legacy_games(path: Path) -> bool:
    """A game tree (``alfworld generate`` writes no marker: its tree equals the games stage's, byte for byte)."""
    return all(p.name in ("train", "valid_seen", "valid_unseen") and p.is_dir() for p in path.iterdir())


_LEGACY = {
    "export": _legacy_export,
    "schemas": _legacy_schemas,
    "model": _legacy_model,
    "report": _legacy_report,
    "games": _legacy_games,
    "experiment": lambda path: (path / "results.json").is_file() or (path / "models").is_dir(),
}


def is_build_dir(path: Path) -> bool:
    """A steca-data build directory: its cache, the marker of kind ``build``, or its resolved recipe beside
    its datasets (a recipe.yaml alone may be the user's own project folder)."""
    try:
        if (path / "cache.duckdb").is_file() or marker_kind(path) == "build":
            return True
        return (path / "recipe.yaml").is_file() and any((path / d).is_dir() for d in ("dataset", "parquet"))
    except OSError:
        return False


def marker_kind(path: Path) -> str | None:
    """The kind of output steca-data recorded in ``path``'s marker, if any."""
    try:
        return json.loads((path / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def mark(path: Path, kind: str) -> None:
    """Record in ``path`` that steca-data wrote it (what a later ``--overwrite`` or rerun may replace)."""
    (path / MARKER).write_text(json.dumps({"kind": kind, "written_by": "steca-data"}) + "\n")


def _typed(raw: str | os.PathLike | None, what: str) -> Path:
    text = os.fspath(raw) if raw is not None else ""
    if not text.strip():
        raise OutputPathError(f"{what}: empty path; name a new folder or file")
    if text != text.strip():
        raise OutputPathError(f"{what} {text!r}: starts or ends with spaces; name the path without them")
    return Path(text).expanduser()


def _where(path: Path) -> Path:
    return path.resolve()


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _common_checks(path: Path, resolved: Path, what: str, noun: str = "folder") -> None:
    """Checks shared by files and folders: no root, home, current directory or an ancestor of either,
    and every existing ancestor a folder."""
    home, cwd = _where(Path.home()), _where(Path.cwd())
    if resolved == Path(resolved.anchor):
        raise OutputPathError(f"{what} {path}: the filesystem root; name a new {noun}")
    if resolved == cwd:
        raise OutputPathError(f"{what} {path}: the current directory; name a new {noun}")
    if resolved in cwd.parents:
        raise OutputPathError(f"{what} {path}: contains the current directory; name a new {noun}")
    if resolved == home or resolved in home.parents:
        raise OutputPathError(f"{what} {path}: your home folder{' or above it' if resolved != home else ''}; "
                              f"name a new {noun}")  # fmt: skip
    above = _first_existing(resolved.parent)
    if not above.is_dir():
        raise OutputPathError(f"{what} {path}: {above} is a file, not a folder")


def check_output_dir(
    raw: str | os.PathLike | None,
    kind: str,
    *,
    what: str = "--out",
    sources: Iterable[Path] = (),
    overwrite: bool | None = None,
    own_build: bool = False,
) -> Path:
    """The output folder ``raw`` as a ``Path`` (user-relative), or ``OutputPathError`` naming the problem.

    ``sources``: what the command reads (the output may not be or contain one of them). ``overwrite``:
    None when the command rewrites its own outputs in place; False/True when replacing an existing
    non-empty folder needs ``--overwrite``. ``own_build``: the folder is the build this command makes."""
    path = _typed(raw, what)
    resolved = _where(path)
    _common_checks(path, resolved, what)
    if path.is_symlink():  # write where the link points (replacing the link itself would strand its target)
        path = resolved
    for source in sources:
        src = _where(Path(source))
        if resolved == src or resolved in src.parents:
            raise OutputPathError(f"{what} {path}: is or contains {source}, which this command reads; "
                                  "name a new folder")  # fmt: skip
    if resolved.exists() and not resolved.is_dir():
        raise OutputPathError(f"{what} {path}: exists and is not a directory (a file); name a new folder")
    if not resolved.is_dir() or not any(resolved.iterdir()):
        return path
    if is_build_dir(resolved):
        if own_build:
            return path
        raise OutputPathError(f"{what} {path}: a steca-data build directory; name a new folder")
    ours = marker_kind(resolved)
    if ours is None and _LEGACY.get(kind, lambda p: False)(resolved):
        ours = kind
    if ours is None:
        raise OutputPathError(
            f"{what} {path}: directory is not empty and was not written by steca-data; name an empty or new "
            "folder (nothing was changed)"
        )
    if ours != kind:
        raise OutputPathError(f"{what} {path}: holds a steca-data {ours}, not a {kind}; name another folder")
    if overwrite is False:
        raise OutputPathError(f"{what} {path}: directory is not empty (pass --overwrite to replace it)")
    return path


def check_output_file(
    raw: str | os.PathLike | None, signature: tuple[str, ...], *, what: str = "--out", existing_ok: bool = False
) -> Path:
    """The output file ``raw``, or ``OutputPathError``: an existing file is replaced only when it is a JSON
    object holding every key of ``signature`` (a report of the same kind that steca-data wrote);
    ``existing_ok``: the file is opened, not replaced (a cache)."""
    path = _typed(raw, what)
    resolved = _where(path)
    _common_checks(path, resolved, what, "file")
    if resolved.is_dir():
        raise OutputPathError(f"{what} {path}: a directory; name a file such as {path / 'report.json'}")
    if resolved.exists() and not existing_ok:
        try:
            doc = json.loads(resolved.read_text())
        except (OSError, ValueError):
            doc = None
        if not isinstance(doc, dict) or not all(key in doc for key in signature):
            raise OutputPathError(
                f"{what} {path}: exists and is not a report steca-data wrote; name a new file (nothing was changed)"
            )
    return path


def _built_name(build_dir: Path) -> str | None:
    """The recipe name a build folder's resolved ``recipe.yaml`` records (None when it has none)."""
    import yaml

    try:
        name = (yaml.safe_load((build_dir / "recipe.yaml").read_text()) or {}).get("name")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return name if isinstance(name, str) else None


def check_build_output(build_dir: Path, cache: str | None, what: str, name: str | None = None) -> None:
    """A recipe's ``output.dir`` (a new or empty folder, or this recipe's build: a build of another recipe
    would have its datasets replaced) and ``output.cache`` (a file, not a folder)."""
    path = check_output_dir(str(build_dir), "build", what=f"{what}: output.dir", own_build=True)
    built = _built_name(path.resolve()) if name else None
    if built is not None and built != name:
        raise OutputPathError(f"{what}: output.dir {path}: the build of recipe {built!r}, not {name!r}; name "
                              "another folder (or delete that build)")  # fmt: skip
    if cache:  # an empty output.cache means the default, <dir>/cache.duckdb (Recipe.cache_path)
        path = check_output_file(cache, (), what=f"{what}: output.cache", existing_ok=True)
        if path.is_dir():
            raise OutputPathError(f"{what}: output.cache {path}: a directory; name a .duckdb file")


def write_file_atomically(path: Path, text: str) -> None:
    """Write beside, then rename over: a kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _aside(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover_dir(out: Path) -> None:
    """Finish what a killed ``replace_dir`` left: the old folder back if the new one never arrived, else gone."""
    old = _aside(out)
    if old.is_dir():
        if not out.exists():
            old.rename(out)
        else:
            shutil.rmtree(old, ignore_errors=True)


def replace_dir(new: Path, out: Path) -> None:
    """Switch the complete folder ``new`` in as ``out``: old one aside, new one in, old one removed."""
    recover_dir(out)
    old = _aside(out)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
