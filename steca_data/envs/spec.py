"""The recipe's ``env`` section: the fields every environment has; each plugin subclasses it with its own.

The base lives with the environments (not with the recipe) so a plugin's spec, backend and task listing
depend only on this layer; ``recipe.model`` picks the subclass by ``env.name`` through the registry.
Validators raise ``ValueError("sub.path: message")``; the recipe loader folds the sub path into the
error's location, so every problem reads ``file:line: env.sub.path: message``.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from steca_data.core.schemas import Task
from steca_data.core.section import Section

_Section = Section  # unknown fields rejected, booleans are not numbers


class SplitSpec(_Section):
    """A contiguous block of tasks from one fold of the environment."""

    fold: str = Field(description="Environment fold, e.g. train / dev / test, or a data folder.")
    start: int = Field(0, ge=0, description="Index of the first task inside the fold.")
    count: int = Field(gt=0, description="Number of tasks.")
    params: dict[str, int | bool] | None = Field(
        None, description="Game parameters for this split only; merged over env.params."
    )


class EnvSpec(_Section):
    """Fields shared by every environment; a plugin's subclass narrows ``name`` to its own literal."""

    name: str = Field(description="Registered environment, e.g. 'textworld_express'.")
    game: str = Field(description="Game or task selection inside the environment.")
    params: dict[str, int | bool] = Field(default_factory=dict)
    max_steps: int = Field(30, gt=0, le=1000)
    workers: int = Field(4, ge=1, le=64, description="Simulator instances driven in parallel threads.")
    splits: dict[str, SplitSpec]

    @field_validator("splits")
    @classmethod
    def _needs_train(cls, splits: dict[str, SplitSpec]) -> dict[str, SplitSpec]:
        if "train" not in splits:
            raise ValueError("a 'train' split is required (expert data is built from it)")
        return splits

    def step_limit(self, task: Task) -> int | None:
        """The task's own step limit, where the environment defines one (a benchmark's per-task limits)."""
        return None

    def episode_steps(self, task: Task, cap: int) -> int:
        """Steps an agent's episode of ``task`` may take: ``cap`` (the run's limit), or the task's own
        limit when that is lower. Stages put it in their unit keys and episode starts alike."""
        own = self.step_limit(task)
        return cap if own is None else min(cap, own)


def check_folds(splits: dict[str, SplitSpec], folds: list[str] | tuple[str, ...]) -> None:
    """Every split names a known fold."""
    for name, split in splits.items():
        if split.fold not in folds:
            raise ValueError(f"splits.{name}.fold: must be one of {list(folds)} (got {split.fold!r})")


def check_no_overlap(splits: dict[str, SplitSpec]) -> None:
    """Blocks of one fold must not overlap: a held-out split must never share tasks with training.

    The error names the held-out split (not ``train``), whichever comes first in the file, so it points at
    the block to move."""
    seen: dict[str, list[tuple[str, range]]] = {}
    for name, split in splits.items():
        block = range(split.start, split.start + split.count)
        for other, rng in seen.get(split.fold, []):
            if block.start < rng.stop and rng.start < block.stop:
                held_out, trained = (other, name) if name == "train" else (name, other)
                raise ValueError(
                    f"splits.{held_out}: overlaps splits.{trained} in fold {split.fold!r} "
                    "(held-out tasks must not be trained on)"
                )
        seen.setdefault(split.fold, []).append((name, block))
