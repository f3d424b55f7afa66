"""Replay the gold programs of STeCa's test files through the environment: how many reach success, per rule.

A check of the text interface and of the success rules on the paper's own tasks (each row's ``action_list``,
the gold program as STeCa's text actions, played through a session exactly as an agent's actions are):

    python -m steca_data.envs.virtualhome.steca_check [--dataset-dir DIR] [--steca-dir DIR] [--rule steca|goal]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from steca_data.core.schemas import Task
from steca_data.envs.spec import SplitSpec
from steca_data.envs.virtualhome.backend import VirtualHomeBackend, list_tasks, steca_row_of
from steca_data.envs.virtualhome.spec import VirtualHomeSpec
from steca_data.envs.virtualhome.splits import STECA_FOLDS
from steca_data.envs.virtualhome.steca_tests import ROWS


@dataclass
class GoldReplay:
    fold: str
    rule: str
    listed: int
    runnable: int
    succeeded: int
    refused_steps: int  # gold text actions the executor refused (they change nothing)
    failed: list[str] = field(default_factory=list)  # task ids whose gold program missed the goal

    @property
    def rate(self) -> float:
        return self.succeeded / self.runnable if self.runnable else 0.0


def spec_for(
    rule: str = "steca", dataset_dir: str | None = None, steca_dir: str | None = None, count: int = ROWS
) -> VirtualHomeSpec:
    """A recipe ``env`` section with both STeCa test folds (and the train split every recipe needs)."""
    splits = {"train": SplitSpec(fold="train_steca", count=1)}
    splits.update({fold: SplitSpec(fold=fold, count=count) for fold in STECA_FOLDS})
    return VirtualHomeSpec(splits=splits, success=rule, dataset_dir=dataset_dir, steca_dir=steca_dir)


def replay(spec: VirtualHomeSpec, split_name: str, tasks: list[Task] | None = None) -> GoldReplay:
    """Play each task's gold actions from a reset; a task succeeds when the goal holds after its last action or
    earlier (an episode ends at success, as in STeCa's loop)."""
    backend = VirtualHomeBackend(spec)
    session = backend.new_session(with_admissible=False)
    tasks = list_tasks(spec, split_name) if tasks is None else tasks
    succeeded, refused, failed = 0, 0, []
    for task in tasks:
        row, _ = steca_row_of(task, spec)
        result = session.reset(task)
        for action in row.actions:
            result = session.step(action)
            refused += result.valid is False
            if result.success:
                break
        succeeded += result.success
        if not result.success:
            failed.append(task.task_id)
    split = spec.splits[split_name]
    return GoldReplay(split.fold, spec.success, split.count, len(tasks), succeeded, refused, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-dir", default=None)
    parser.add_argument("--steca-dir", default=None)
    parser.add_argument("--rule", choices=("steca", "goal"), default="steca")
    args = parser.parse_args()
    spec = spec_for(args.rule, args.dataset_dir, args.steca_dir)
    for fold in STECA_FOLDS:
        result = replay(spec, fold)
        print(json.dumps({**asdict(result), "rate": round(result.rate, 4)}))


if __name__ == "__main__":
    main()
