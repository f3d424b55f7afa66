"""Runtime failures are one line with the cause and what to do (exit 1): a cache locked by a running build,
a damaged cache, a full disk, a read-only output folder. ``sql`` is read-only in effect and prints data
as data (``[red]x[/red]`` literally)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from steca_data.cache.query import connect_read_only
from steca_data.cache.store import Cache
from tests.conftest import write_recipe

MARKUP = "[red]abc[/red] [/x] [bold]"


@pytest.fixture
def cache_file(tmp_path) -> Path:
    path = tmp_path / "cache.duckdb"
    with Cache(path) as cache:
        cache.set_meta(MARKUP, "[/x]")
    return path


def test_sql_prints_data_literally(cli, cache_file):
    for fmt in ("table", "csv", "json"):
        result = cli("sql", "select key, value from meta where key like '[%'", "--db", cache_file, "--format", fmt)
        assert result.code == 0, result.err
        assert MARKUP.replace('"', '\\"') in result.out and "[/x]" in result.out, (fmt, result.out)


def test_sql_connection_cannot_write_even_past_the_statement_check(tmp_path, cache_file):
    con = connect_read_only(cache_file)
    target = tmp_path / "leak.csv"
    for statement in (
        f"copy (select 1) to '{target}'",
        f"attach '{tmp_path / 'other.duckdb'}' as other",
        "set enable_external_access = true",
        "load httpfs",
        "select * from read_csv('/etc/hostname')",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
    con.close()
    assert not target.exists() and not (tmp_path / "other.duckdb").exists()


def test_sql_reading_a_file_is_one_line(cli, cache_file):
    result = cli("sql", "select * from read_text('/etc/hostname')", "--db", cache_file)
    assert result.code == 1 and len(result.err_lines) == 1 and "disabled by configuration" in result.err


@pytest.fixture
def locked(tmp_path):
    """A second process holding the build cache open for writing, as a running build does."""
    path = write_recipe(tmp_path, name="locked", train=2)
    db = tmp_path / "build" / "cache.duckdb"
    Cache(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ok"
    yield path, db, holder.pid
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("command", ["plan", "build", "sql"])
def test_a_cache_in_use_by_a_running_build_is_one_line(cli, locked, command):
    path, db, pid = locked
    args = {"plan": ["plan", path], "build": ["build", path, "--quiet"], "sql": ["sql", "select 1", "--db", db]}
    result = cli(*args[command])
    assert result.code == 1, result.err
    assert f"in use by process {pid}" in result.err_lines[-1] and "Traceback" not in result.err
    assert len([ln for ln in result.err_lines if ln.startswith("error:")]) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_cache_is_one_line(cli, tmp_path, damage):
    path = write_recipe(tmp_path, name="damaged", train=2)
    db = tmp_path / "build" / "cache.duckdb"
    db.parent.mkdir(parents=True)
    if damage == "garbage":
        db.write_bytes(b"\x00garbage" * 5000)
    else:
        with Cache(db) as cache:
            cache.set_meta("x", "y" * 100_000)
        db.write_bytes(db.read_bytes()[:20_000])
    for args in (["build", path, "--quiet"], ["plan", path]):
        result = cli(*args)
        assert result.code == 1, result.err
        assert "is damaged" in result.err_lines[-1] and "move it aside" in result.err_lines[-1], result.err
        assert "Traceback" not in result.err


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, f"steca-{uuid.uuid4().hex[:6]}", str(where)])
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=400k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_names_the_real_cause(cli, tmp_path, small_disk):
    (small_disk / "filler").write_bytes(b"\0" * 300_000)
    path = write_recipe(tmp_path, name="full", train=20, output={"dir": str(small_disk / "build")})
    result = cli("build", path, "--quiet")
    assert result.code == 1, result.err
    last = result.err_lines[-1]
    assert "disk full" in last and "cannot rollback" not in result.err and "Traceback" not in result.err, last


def test_a_read_only_output_folder_is_one_line(cli, tmp_path):
    disk = tmp_path / "ro"
    if not _mount_tmpfs(disk, "ro,size=100k"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        path = write_recipe(tmp_path, name="ro", train=2, output={"dir": str(disk / "build")})
        result = cli("build", path, "--quiet")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert result.code == 1, result.err
    assert len(result.err_lines) == 1 and "read-only" in result.err and "output.dir" in result.err, result.err
