"""Helpers for the hardening tests: run either CLI in-process under its real entry point (``run_app``), and
snapshot a folder to prove that a rejected command wrote nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from steca_data.cli.common import run_app


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (files and folders), relative."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """``cli("build", "x.yaml")`` runs ``steca-data`` (``tool="train"``: ``steca-train``) in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("STECA_DEBUG", raising=False)

    def run(*args: str, tool: str = "data") -> Outcome:
        if tool == "data":
            from steca_data.cli.main import app

            prog = "steca-data"
        else:
            from steca_train.cli import app

            prog = "steca-train"
        capsys.readouterr()
        code = run_app(app, [str(a) for a in args], prog=prog)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
