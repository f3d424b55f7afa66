"""Stages and the context they run in.

A stage is a pure function of its inputs: it can say, without computing anything, how many of its units
are already in the cache (``plan``), and it computes and stores the rest one unit at a time (``run``).
The executor (``builder.Builder``) decides order and reporting; stages never print.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property

from steca_data.cache.store import Cache
from steca_data.core.progress import Reporter
from steca_data.core.schemas import Task
from steca_data.envs import EnvBackend, make_backend
from steca_data.envs.registry import env_version, list_tasks
from steca_data.recipe.model import Recipe

KILL_AFTER_ENV = "STECA_DATA_KILL_AFTER_UNITS"


@dataclass
class StagePlan:
    stage: str
    total: int
    cached: int
    note: str = ""

    @property
    def to_compute(self) -> int:
        return self.total - self.cached


@dataclass
class StageResult:
    stage: str
    computed: int = 0
    cached: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


class BuildContext:
    """What stages share: the recipe, the cache, the reporter and a lazily started environment."""

    def __init__(self, recipe: Recipe, cache: Cache, reporter: Reporter, retry_failed: bool = False):
        self.recipe = recipe
        self.cache = cache
        self.reporter = reporter
        self.retry_failed = retry_failed
        self._backend: EnvBackend | None = None
        self.agent = None  # set by the base-agent stage: .policy_id (cheap) and .policy (loaded on use)
        self.engine = None  # shared engine state (stages.engine.Engine), made on first use
        self._units_done = 0
        kill_after = os.environ.get(KILL_AFTER_ENV)
        self._kill_after = int(kill_after) if kill_after else None

    def unit_done(self) -> None:
        """Called after each unit is committed. ``STECA_DATA_KILL_AFTER_UNITS=N`` SIGKILLs the process
        after N units: the fault injection the resume tests use, as real as a crash gets."""
        self._units_done += 1
        if self._kill_after is not None and self._units_done >= self._kill_after:
            self.cache.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    @property
    def env_version(self) -> str:
        return env_version(self.recipe.env)

    @cached_property
    def tasks(self) -> dict[str, list[Task]]:
        return {name: list_tasks(self.recipe.env, name) for name in self.recipe.env.splits}

    @property
    def backend(self) -> EnvBackend:
        """Started on first use, so a fully cached build never launches a simulator."""
        if self._backend is None:
            self._backend = make_backend(self.recipe.env)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class Stage(ABC):
    name: str

    @abstractmethod
    def plan(self, ctx: BuildContext) -> StagePlan: ...

    @abstractmethod
    def run(self, ctx: BuildContext) -> StageResult: ...
