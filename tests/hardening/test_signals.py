"""Ctrl-C and SIGTERM sent for real to real ``steca-data`` processes: one line, exit 130 / 143, no traceback
however many times it is pressed, the simulator's JVM gone, nothing half-written, and a build resumes.

A terminal's Ctrl-C reaches the whole foreground process group (the JVM too), so SIGINT goes to the group
here; ``kill PID`` reaches the process alone, so SIGTERM goes to the process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import count, write_recipe

PARAMS = {"numLocations": 3, "numItemsToPutAway": 4}  # ~17 gold steps a task: a stage that lasts seconds


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "steca_data.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        start_new_session=True,  # its own process group, as a terminal job is
    )


def _wait_for(proc: subprocess.Popen, needle: str) -> list[str]:
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never came: {''.join(seen)}")


def _send(proc: subprocess.Popen, sig: int, times: int, group: bool, gap: float = 0.3) -> tuple[int, str]:
    for _ in range(times):
        if proc.poll() is not None:
            break
        (os.killpg if group else os.kill)(proc.pid, sig)
        time.sleep(gap)
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err


def _group_gone(pgid: int) -> bool:
    """No process of the command's group (its JVM included) is left, within a few seconds."""
    deadline = time.monotonic() + 30  # a JVM notices its closed pipe and exits; slower on a loaded machine
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
        if not found:
            return True
        time.sleep(0.1)
    return False


def _loaded(pid: int, library: str) -> bool:
    """``library``'s shared object is mapped into the process (the command has started using it)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _the_line(err: str) -> str:
    assert "Traceback" not in err and "py4j" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture
def long_build(tmp_path) -> Path:
    return write_recipe(tmp_path, name="long", train=200, env={"params": PARAMS, "workers": 2})


@pytest.mark.parametrize(
    "sig, times, group, code, resume", [(signal.SIGINT, 3, True, 130, True), (signal.SIGTERM, 1, False, 143, False)]
)
def test_an_interrupted_build_says_one_line_and_resumes(long_build, tmp_path, sig, times, group, code, resume):
    proc = _start("build", str(long_build), "--quiet", cwd=tmp_path)
    _wait_for(proc, "gold paths: 1/")
    returncode, err = _send(proc, sig, times, group)
    assert returncode == code, err
    line = _the_line(err)
    assert re.fullmatch(r"error: interrupted: \d+ units? kept; run the same command to resume", line), line
    kept = int(line.split("interrupted: ")[1].split()[0])
    db = tmp_path / "build" / "cache.duckdb"
    assert count(db, "select count(*) from gold_paths") == kept  # what it says is what the cache holds
    assert _group_gone(proc.pid), "the simulator's JVM outlived the build"
    assert not (tmp_path / "build" / "dataset").exists(), "no outputs from an interrupted build"
    if not resume:
        return
    resumed = subprocess.run([sys.executable, "-m", "steca_data.cli.main", "build", str(long_build), "--quiet"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"gold: {200 - kept} computed, {kept} cached" in resumed.stderr, resumed.stderr


def test_ctrl_c_during_sql_is_one_line(tmp_path):
    from steca_data.cache.store import Cache

    Cache(tmp_path / "c.duckdb").close()
    proc = _start("sql", "select count(*) from range(1000000000000) t(x) where x % 7 = 3", "--db", "c.duckdb",
                  cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _loaded(proc.pid, "duckdb") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the command imports DuckDB when it runs; then the query runs (for minutes)
    time.sleep(0.5)
    returncode, err = _send(proc, signal.SIGINT, 4, True, gap=1.5)  # a third press after 3 s always stops it
    assert returncode == 130, err
    assert "interrupted" in _the_line(err)


def test_ctrl_c_during_export_leaves_no_half_export(tmp_path):
    from steca_data.build.builder import Builder
    from steca_data.core.progress import Reporter
    from steca_data.recipe.model import load_recipe

    recipe = write_recipe(tmp_path, name="big", train=200, env={"params": PARAMS})
    Builder(load_recipe(recipe), Reporter(quiet=True)).build()
    outcomes = set()
    for attempt in range(3):
        out = tmp_path / f"export-{attempt}"
        staging = tmp_path / f".{out.name}.export-tmp"
        proc = _start("export", "build", "--format", "trl-sft", "--out", out.name, cwd=tmp_path)
        deadline = time.monotonic() + 120
        while not staging.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # the export is writing: now is when a half-written folder could be left
        returncode, err = _send(proc, signal.SIGINT, 2, True)
        assert returncode in (0, 130), err
        outcomes.add(returncode)
        if returncode == 130:
            assert "interrupted" in _the_line(err)
            assert not out.exists()
        else:
            assert (out / "README.md").is_file() and (out / "dataset" / "dataset_dict.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "a staging folder left"
        if 130 in outcomes:
            break
    assert 130 in outcomes, "no export was interrupted while writing"
