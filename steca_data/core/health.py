"""One line of ``steca-data doctor`` (a health check) and the probes that make one.

A probe that could be fooled by this process's state (a module already imported, a module hidden by
``steca_data.compat``, a warm cache) runs in a fresh interpreter, as the failing case did: vLLM's model
inspection and engine processes are fresh interpreters too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One thing checked: what it is, how it stands, what was seen and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    needed: bool = False
    """True when the recipe being checked cannot run without it (a failed needed check exits 1)."""

    def require(self, needed: bool = True) -> Check:
        return Check(self.name, self.status, self.detail, self.fix, needed)


@dataclass(frozen=True)
class Probe:
    ok: bool
    output: str
    """stdout when it worked, else the last line of stderr (the exception)."""


def fresh_python(code: str, timeout: float = 300, env: dict[str, str] | None = None) -> Probe:
    """Run ``code`` in a fresh interpreter of this environment (it inherits this process's environment,
    so it sees what any child of a steca-data process sees)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        return Probe(False, f"no answer within {timeout:.0f} s")
    if done.returncode == 0:
        return Probe(True, done.stdout.strip())
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    return Probe(False, lines[-1] if lines else f"exit code {done.returncode}")


def java_check(purpose: str, minimum: int = 17) -> Check:
    """Java on PATH, at least ``minimum`` (the JARs of TextWorldExpress and ScienceWorld need 17)."""
    name = f"Java ≥ {minimum} ({purpose})"
    java = shutil.which("java")
    fix = f"install Java {minimum}+ (e.g. apt-get install openjdk-{minimum}-jre-headless) and put java on PATH"
    if java is None:
        return Check(name, "fail", "no `java` on PATH", fix)
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, "fail", f"{java} -version failed: {exc}", fix)
    text = done.stderr + done.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if done.returncode != 0 or match is None:
        return Check(name, "fail", f"{java} -version did not say a version", fix)
    major = int(match.group(1))
    major = int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8
    if major < minimum:
        return Check(name, "fail", f"{java} is Java {major}", fix)
    return Check(name, "ok", f"Java {major} ({java})")


def package_version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
