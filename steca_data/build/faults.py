"""Fault injection for the resume and retry tests: real crashes, not mocks.

``STECA_DATA_KILL_AFTER_UNITS=N``      SIGKILL the build itself after N stored units (kill-and-resume).
``STECA_DATA_KILL_ENV_AFTER_UNITS=N``  after N stored units, SIGKILL the environment's processes (the
                                       build's child processes, e.g. the simulator's JVM), and again each
                                       time a fresh environment starts: an environment that keeps dying.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

KILL_AFTER_ENV = "STECA_DATA_KILL_AFTER_UNITS"
KILL_ENV_AFTER_ENV = "STECA_DATA_KILL_ENV_AFTER_UNITS"


def _int_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def child_pids() -> list[int]:
    """This process's children (an environment's simulators), read from /proc; empty where there is none."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields and int(fields[1]) == me:
            found.append(int(stat.parent.name))
    return found


class Faults:
    """Counts stored units and fires the faults the environment asks for."""

    def __init__(self) -> None:
        self.kill_self_after = _int_env(KILL_AFTER_ENV)
        self.kill_env_after = _int_env(KILL_ENV_AFTER_ENV)
        self.units = 0

    @property
    def env_dead(self) -> bool:
        return self.kill_env_after is not None and self.units >= self.kill_env_after

    def kill_environment(self) -> None:
        for pid in child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def unit_stored(self, flush) -> None:
        """After each stored unit: maybe kill the environment, maybe kill this process (after ``flush``)."""
        self.units += 1
        if self.kill_env_after is not None and self.units == self.kill_env_after:
            self.kill_environment()
        if self.kill_self_after is not None and self.units >= self.kill_self_after:
            flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def environment_started(self) -> None:
        """A fresh environment: it dies at once when the environment is meant to be dead."""
        if self.env_dead:
            self.kill_environment()
