"""Executors: where a stage's work runs, apart from what the work is (datatrove's split).

A stage says what its units are and how one is computed; an executor owns placement, concurrency and the
environment: how many simulator sessions run at once, how many episodes are in flight, on which process or
node. Stages call three things and never make a pool of their own:

- ``map_sessions(fn, items, on_result)``: ``fn(backend, session, item)`` for each item, on simulator sessions
  (gold paths, imported replays);
- ``map_calls(fn, items, workers, on_result)``: plain calls that wait on I/O (an LLM writing thoughts);
- ``play(job, starts, on_result, follow_up)``: episodes, each handed on the moment it ends.

Results come back through ``on_result(item or index, result or exception)`` on the caller's thread, so the
caller (the driver) stays the only writer of the cache. Nothing an executor decides shapes a result: seeds
come from unit keys, never from placement or batch composition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from steca_data.core.schemas import Trajectory
from steca_data.episodes.runner import EpisodeStart, PromptConfig
from steca_data.policies.base import Policy, SamplingParams


class PolicySource(Protocol):
    """Where episodes get their policy: ``policy`` loads it here; ``spec`` and ``model`` (when present) let
    another process load the same weights (a worker, an engine replica)."""

    policy_id: str

    @property
    def policy(self) -> Policy: ...


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy already loaded in this process (evaluation's): played here, whatever the executor."""

    policy: Policy

    @property
    def policy_id(self) -> str:
        return self.policy.policy_id


@dataclass(frozen=True)
class PlayJob:
    """How every episode of one ``play`` call is played (the same for all of its starts)."""

    source: PolicySource
    params: SamplingParams
    max_steps: int
    prompt: PromptConfig
    kind: str  # the trajectories' ``source`` field: rollout | eval


OnResult = Callable[[Any, Any], None]
FollowUp = Callable[[int, Trajectory], list[EpisodeStart]]


class Executor(ABC):
    """Runs a stage's work; ``local`` (threads beside one engine) or ``ray`` (workers beside environments)."""

    kind: str = ""

    @abstractmethod
    def map_sessions(self, fn: Callable, items: list, on_result: OnResult) -> None:
        """``fn(backend, session, item)`` for each item; ``on_result(item, value_or_exception)`` as each ends."""

    @abstractmethod
    def map_calls(self, fn: Callable, items: list, workers: int, on_result: OnResult) -> None:
        """``fn(item)`` on up to ``workers`` threads; ``on_result(item, value_or_exception)`` as each ends."""

    @abstractmethod
    def play(self, job: PlayJob, starts: list[EpisodeStart], on_result: OnResult, follow_up: FollowUp | None) -> None:
        """Play every start; ``on_result(i, trajectory_or_exception)`` once per start as it ends (a start may
        be played twice after a crash; the first result wins). ``follow_up(i, trajectory)`` returns starts
        that result made necessary: they join the run numbered after the starts so far."""

    @property
    @abstractmethod
    def backend(self):
        """The environment backend on this process (started on first use)."""

    @abstractmethod
    def restart(self) -> None:
        """Drop this process's environment (it may have crashed); the next use starts a fresh one."""

    @abstractmethod
    def use_env(self, env) -> None:
        """Play ``env`` (the recipe's section as the build resolved it) from now on."""

    def notes(self) -> list[str]:
        """What a build's summary should say about where it ran (nothing for one process)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop what the executor started (environments, workers, engines)."""
