"""Which tasks are playable, decided once by replaying every gold program, and stored in ``tasks.json``.

Deciding needs every graph (20-26 ms each to parse) and a replay of every program (~50 s for all 518), too
slow for listing tasks, so the verdicts ship with the code and list_tasks only reads them. A task is kept
when its goal is non-empty and its gold program, replayed as text actions, reaches the goal. Regenerate
after a virtualhome-eval upgrade or a change to the text interface:

    python -m steca_data.envs.virtualhome.manifest
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).with_name("tasks.json")

KEPT = "kept"
EMPTY_GOAL = "empty_goal"  # no virtualhome-eval goal, and the init->final difference is only the character's
GOLD_FAILS = "gold_program_fails"  # the program itself (by node id) fails in the executor or misses the goal
SEVERAL_INSTANCES = "several_instances"  # the program needs two or more objects of one class name
AMBIGUOUS_NAME = "ambiguous_name"  # one object per class, but its name resolves to another instance


def _replay_ids(world) -> bool:
    """The gold program by node id, straight through the executor: does it reach the goal?"""
    from steca_data.envs.virtualhome.simulator import Episode

    episode = Episode(world)
    for step in world.program.steps:
        if not episode.apply(step.action, tuple(node for _, node in step.args)):
            return False
    return episode.success()


def _replay_text(world) -> tuple[bool, int]:
    """The gold program as text actions: (goal reached, failed steps)."""
    from steca_data.envs.virtualhome.simulator import Episode, gold_text_actions

    episode = Episode(world)
    failed = sum(not episode.act(action) for action in gold_text_actions(world.program))
    return episode.success(), failed


def judge(file_id: str) -> dict[str, Any]:
    """The manifest entry of one task."""
    from steca_data.envs.virtualhome.simulator import load_world

    world = load_world(file_id)
    program = world.program
    entry: dict[str, Any] = {
        "file_id": file_id,
        "title": program.title,
        "goal_source": world.goal.source,
        "goal_size": world.goal.size,
        "gold_steps": len(program.steps),
    }
    if world.goal.empty:
        return {**entry, "status": EMPTY_GOAL}
    ok, failed = _replay_text(world)
    entry["text_failed_steps"] = failed
    if ok:
        return {**entry, "status": KEPT}
    instances: dict[str, set[int]] = {}
    for step in program.steps:
        for name, node in step.args:
            instances.setdefault(name, set()).add(node)
    if not _replay_ids(world):
        status = GOLD_FAILS
    elif any(len(ids) > 1 for ids in instances.values()):
        status = SEVERAL_INSTANCES
    else:
        status = AMBIGUOUS_NAME
    return {**entry, "status": status}


def build_manifest() -> dict[str, Any]:
    from steca_data.envs.virtualhome.data import load_programs, virtualhome_version

    entries = [judge(file_id) for file_id in load_programs()]
    return {
        "version": virtualhome_version(),
        "counts": dict(sorted(Counter(e["status"] for e in entries).items())),
        "tasks": entries,
    }


@cache
def load_manifest() -> dict[str, Any]:
    if not MANIFEST.is_file():
        raise FileNotFoundError(f"{MANIFEST} is missing; run `python -m steca_data.envs.virtualhome.manifest`")
    return json.loads(MANIFEST.read_text())


def kept_tasks() -> list[dict[str, Any]]:
    return [e for e in load_manifest()["tasks"] if e["status"] == KEPT]


def main() -> None:
    manifest = build_manifest()
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{MANIFEST}: {manifest['counts']}")


if __name__ == "__main__":
    main()
