"""Nothing a user types deletes their data: every command that writes checks its output path first (exit 2,
one line, nothing changed), and ``--overwrite`` replaces only an earlier export of ours, atomically.

Each case runs the real command (in-process, under the real entry point) from a working folder holding a
build, a second build, a file and a folder of the user's own; HOME points into the test's folder; the whole
tree (every file's bytes) must be the same afterwards.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from steca_data.core import outputs
from tests.conftest import write_recipe


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    root = tmp_path_factory.mktemp("paths")
    Builder(load_recipe(write_recipe(root, name="paths", train=2)), Reporter(quiet=True)).build()
    return root / "build"


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content hash (links by target); HOME's caches excluded."""
    found = {}
    for p in sorted(root.rglob("*")):
        if ".cache" in p.relative_to(root).parts:
            continue
        if p.is_symlink():
            found[str(p.relative_to(root))] = f"-> {p.readlink()}"
        elif p.is_file():
            found[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            found[str(p.relative_to(root))] = "dir"
    return found


@pytest.fixture
def work(cli, built, tmp_path, monkeypatch) -> Path:
    """tmp_path/work (the current directory): builds/src, other (a second build), link -> builds/src,
    notes.txt, mine/ (the user's folder), model/ and adapter/ (enough for the checks); HOME = tmp_path/home."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    for name in ("builds/src", "other"):  # copies whose recipe points at the copy (relative to the work folder)
        shutil.copytree(built, work / name)
        recipe = yaml.safe_load((work / name / "recipe.yaml").read_text())
        recipe["output"]["dir"] = name
        (work / name / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (work / "link").symlink_to(work / "builds" / "src")
    (work / "notes.txt").write_text("mine")
    (work / "mine").mkdir()
    (work / "mine" / "keep.txt").write_text("mine")
    (work / "model").mkdir()
    (work / "model" / "config.json").write_text("{}")
    (work / "adapter").mkdir()
    (work / "adapter" / "adapter_config.json").write_text("{}")
    monkeypatch.chdir(work)
    return work


# what to pass as the output path -> words the one error line must hold
BAD_DIRS = {
    "empty": ("", ["empty path", "current directory"]),
    "blank": ("  ", ["empty path", "spaces"]),
    "dot": (".", ["current directory"]),
    "dotdot": ("..", ["contains the current directory"]),
    "home": ("~", ["home folder"]),
    "home-parent": ("~/..", ["home folder", "contains the current directory"]),
    "root": ("/", ["root", "contains the current directory"]),
    "the-source": ("builds/src", ["builds/src", "build directory"]),
    "symlink-to-source": ("link", ["builds/src", "build directory"]),
    "parent-of-source": ("builds", ["builds/src", "not empty"]),
    "another-build": ("other", ["build directory"]),
    "a-file": ("notes.txt", ["not a directory", "a file"]),
    "below-a-file": ("notes.txt/x", ["is a file"]),
    "users-folder": ("mine", ["not written by steca-data"]),
}

COMMANDS = {
    "export": lambda o: ["export", "builds/src", "--format", "trl-sft", "--out", o, "--overwrite"],
    "report": lambda o: ["report", "builds/src", "--out", o],
    "schemas-export": lambda o: ["schemas", "export", "--out", o],
    "init-model": lambda o: ["init-model", "--recipe", "builds/src/recipe.yaml", "--out", o],
    "sft": lambda o: ["sft", "--recipe", "builds/src/recipe.yaml", "--model", "model", "--out", o],
    "reinforce": lambda o: [
        "reinforce",
        "--data",
        "builds/src",
        "--model",
        "model",
        "--method",
        "rft",
        "--set",
        "datasets=[expert,de]",
        "--out",
        o,
    ],  # fmt: skip
    "merge": lambda o: ["merge", "adapter", "--out", o],
}
TRAIN = {"init-model", "sft", "reinforce", "merge"}


def _rejected(result, before: dict, work: Path, words: list[str]) -> None:
    assert result.code == 2, (result.code, result.err)
    assert len(result.err_lines) == 1 and "Traceback" not in result.err, result.err
    assert any(w in result.err for w in words), result.err
    assert tree(work.parent) == before, "a rejected command changed files"


# every case for export (the command that replaces folders); the policy is one function, so the other
# commands get the cases that reach each of its branches
OTHERS = ["empty", "dotdot", "home", "symlink-to-source", "another-build", "a-file", "users-folder"]
MATRIX = [("export", case) for case in BAD_DIRS] + [(c, case) for c in COMMANDS if c != "export" for case in OTHERS]


@pytest.mark.parametrize("command, case", MATRIX)
def test_a_bad_output_folder_changes_nothing(cli, work, command, case):
    path, words = BAD_DIRS[case]
    if command == "export" and case in ("parent-of-source",):
        words = [*words, "is or contains"]
    before = tree(work.parent)
    result = cli(*COMMANDS[command](path), tool="train" if command in TRAIN else "data")
    _rejected(result, before, work, words)


BAD_FILES = {
    "dot": (".", ["current directory"]),
    "a-folder": ("mine", ["a directory"]),
    "home": ("~", ["home folder"]),
    "users-file": ("notes.txt", ["not a report steca-data wrote"]),
    "the-recipe": ("builds/src/recipe.yaml", ["not a report steca-data wrote"]),
    "the-cache": ("builds/src/cache.duckdb", ["not a report steca-data wrote"]),
    "below-a-file": ("notes.txt/r.json", ["is a file"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("command", ["eval", "bench"])
def test_a_bad_report_file_changes_nothing(cli, work, command, case):
    path, words = BAD_FILES[case]
    before = tree(work.parent)
    if command == "eval":
        result = cli("eval", "--recipe", "builds/src/recipe.yaml", "--policy", "random", "--out", path, tool="train")
    else:
        result = cli("bench", "builds/src/recipe.yaml", "--json", path)
    _rejected(result, before, work, words)


@pytest.mark.parametrize(
    "output_dir, words",
    [
        (".", ["current directory"]),
        ("..", ["contains the current directory"]),
        ("~", ["home folder"]),
        ("mine", ["not written by steca-data"]),
        ("notes.txt", ["not a directory", "is a file"]),
        ("other", ["the build of recipe 'paths', not 'careless'"]),
    ],
)
def test_a_recipe_output_dir_that_is_not_a_build_changes_nothing(cli, work, output_dir, words):
    recipe = write_recipe(work / "recipes", name="careless", train=2, output={"dir": output_dir})
    before = tree(work.parent)
    result = cli("build", recipe.relative_to(work), "--quiet")
    _rejected(result, before, work, words)


def test_export_overwrite_replaces_an_earlier_export_and_nothing_else(cli, work):
    first = cli("export", "builds/src", "--format", "trl-sft", "--out", "exports/sft")
    assert first.code == 0, first.err
    assert outputs.marker_kind(work / "exports" / "sft") == "export"
    again = cli("export", "builds/src", "--format", "trl-sft", "--out", "exports/sft")
    assert again.code == 2 and "--overwrite" in again.err
    replaced = cli("export", "builds/src", "--format", "step", "--out", "exports/sft", "--overwrite")
    assert replaced.code == 0, replaced.err
    assert "step" in (work / "exports" / "sft" / "README.md").read_text()
    assert sorted(p.name for p in (work / "exports").iterdir()) == ["sft"], "no staging or old folder left"


def test_a_killed_switch_leaves_the_old_export_or_the_new_one(tmp_path, monkeypatch):
    out, new = tmp_path / "out", tmp_path / ".out.new"
    for folder, tag in ((out, "old"), (new, "new")):
        folder.mkdir()
        (folder / "data").write_text(tag)
    real_rename = Path.rename

    def dies_after_the_first(self, target):
        monkeypatch.setattr(Path, "rename", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", dies_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        outputs.replace_dir(new, out)  # killed between "old aside" and "new in"
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not out.exists()
    outputs.recover_dir(out)  # what the next export does first
    assert (out / "data").read_text() == "old"


def test_a_build_into_its_own_folder_and_a_report_into_its_own_still_work(cli, work):
    rebuilt = cli("build", "builds/src/recipe.yaml", "--quiet")
    assert rebuilt.code == 0, rebuilt.err
    for _ in range(2):  # the second run writes over the first report: ours
        report = cli("report", "builds/src")
        assert report.code == 0, report.err
    assert outputs.marker_kind(work / "builds" / "src" / "report") == "report"


def test_a_project_folder_holding_a_recipe_yaml_is_not_a_build(cli, work):
    project = work / "project"
    project.mkdir()
    (project / "README.md").write_text("# my project\n")
    (project / "recipe.yaml").write_text((work / "builds" / "src" / "recipe.yaml").read_text())
    recipe = write_recipe(work / "recipes", name="paths", train=2, output={"dir": "project"})
    before = tree(work.parent)
    _rejected(cli("build", recipe.relative_to(work), "--quiet"), before, work, ["not written by steca-data"])
