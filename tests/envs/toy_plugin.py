"""A complete environment plugin outside the package, registered by tests only: proof that an environment
is one module (here) plus one registry entry.

The game: walk ``length`` steps east to reach the exit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from steca_data.core.errors import RecipeError
from steca_data.core.schemas import Task
from steca_data.envs.base import StepResult
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec, check_folds, check_no_overlap

NAME = "toy_corridor"


class ToySpec(EnvSpec):
    name: Literal["toy_corridor"] = NAME
    game: str = "corridor"
    length: int = Field(3, ge=1, le=10, description="Steps from the start to the exit.")
    marker: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ToySpec:
        check_folds(self.splits, ("train", "test"))
        check_no_overlap(self.splits)
        return self


class ToySession:
    def __init__(self, length: int):
        self.length, self.position = length, 0

    def _result(self, observation: str, valid: bool | None = None) -> StepResult:
        won = self.position >= self.length
        return StepResult(observation, float(won), won, won, ["go east", "wait"], valid)

    def reset(self, task: Task) -> StepResult:
        self.position = 0
        return self._result("You are at the start of a corridor.")

    def step(self, action: str) -> StepResult:
        if action == "go east":
            self.position += 1
        return self._result(
            f"You are {self.length - self.position} steps from the exit.", action in ("go east", "wait")
        )

    def instruction(self) -> str:
        return "reach the exit"

    def close(self) -> None:
        pass


class ToyBackend:
    name = NAME
    version = "toy 1"

    def __init__(self, spec: ToySpec):
        self.spec = spec

    def tasks(self, split_name: str) -> list[Task]:
        return ToyPlugin().tasks(self.spec, split_name)

    def new_session(self) -> ToySession:
        return ToySession(self.spec.length)

    def gold_actions(self, session: ToySession, task: Task) -> list[str]:
        session.reset(task)
        return ["go east"] * self.spec.length

    def close(self) -> None:
        pass


class ToyPlugin(EnvPlugin):
    name: ClassVar[str] = NAME
    spec: ClassVar[type[EnvSpec]] = ToySpec
    prepared: ClassVar[list[str]] = []

    def prompt_version(self, game: str) -> str:
        return "toy-v1"

    def version(self) -> str:
        return "toy 1"

    def tasks(self, spec: EnvSpec, split_name: str) -> list[Task]:
        split = spec.splits[split_name]
        return [
            Task(task_id=f"toy/{split.fold}/{i}", env=NAME, game=spec.game, seed=i, fold=split.fold,
                 split=split_name, unseen=split.fold != "train")
            for i in range(split.start, split.start + split.count)
        ]  # fmt: skip

    def backend(self, spec: EnvSpec) -> ToyBackend:
        assert isinstance(spec, ToySpec)
        return ToyBackend(spec)

    def action_templates(self, game: str) -> list[str]:
        return ["go DIRECTION", "wait"]

    def template_thought(self, game: str, action: str, observation: str) -> str | None:
        return "The exit is further east." if action == "go east" else None

    def prepare(self, spec: EnvSpec, resolve: Callable[[str], Path], where: str) -> None:
        assert isinstance(spec, ToySpec)
        if spec.marker == "missing":
            raise RecipeError([f"{where}: env.marker: no such marker"])
        self.prepared.append(str(resolve("x").parent))
