"""``build.json``: what a finished build's readers need beyond its rows and its cache.

A build directory is self-contained: export, inspect, report and ``steca-train`` read it alone, and it may
be copied elsewhere without the recipe's input files (an imported ShareGPT file, a game tree). Re-deriving
the stages' outputs would re-read those inputs, so the build writes down the three outputs readers need:
the expert trajectories' keys (rows of the cache), the tasks the engine walked, and the base agent (its
policy id, which every engine key holds, and its model directory, relative to the build where it lies
inside it). ``open_build_dir`` publishes them over the build's cache, running and reading nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from steca_data.cache.store import Cache
from steca_data.core.schemas import Task
from steca_data.recipe.model import Recipe
from steca_data.stages.agent import AgentHandle
from steca_data.stages.base import BuildContext
from steca_data.stages.experts import ExpertTrajectories
from steca_data.stages.imports import BuiltExperts, ImportedTasks

MANIFEST = "build.json"
MANIFEST_VERSION = "1"


def manifest_of(ctx: BuildContext, build_dir: Path) -> dict:
    """The manifest of the build ``ctx`` has just assembled (its stage outputs published)."""
    doc: dict = {"version": MANIFEST_VERSION, "experts": list(ctx.get(ExpertTrajectories).keys)}
    if ctx.recipe.uses_engine:
        from steca_data.stages.walks import engine_of

        engine = engine_of(ctx)
        doc["walk_tasks"] = [task.model_dump(mode="json") for task in engine.train_tasks]
        if engine.agent is not None:
            doc["agent"] = {"policy_id": engine.agent.policy_id, "model": _relative(engine.agent.model, build_dir)}
    return doc


def _relative(model: str | None, build_dir: Path) -> str | None:
    """A model directory inside the build as a path relative to it; anything else (a served name) as it is."""
    if model is None or not Path(model).exists():
        return model
    path, home = Path(model).resolve(), build_dir.resolve()
    return path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)


def write_manifest(build_dir: Path, doc: dict) -> None:
    """Written whole or not at all (temp file, then rename)."""
    tmp = build_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, build_dir / MANIFEST)


def read_manifest(build_dir: Path) -> dict | None:
    path = build_dir / MANIFEST
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return doc if doc.get("version") == MANIFEST_VERSION else None


def agent_model(build_dir: Path, doc: dict) -> str | None:
    """The base agent's model as a path that works from here (or the served name / None)."""
    model = (doc.get("agent") or {}).get("model")
    if model is None or Path(model).is_absolute() or not (build_dir / model).exists():
        return model
    return str((build_dir / model).resolve())


def publish(ctx: BuildContext, build_dir: Path, doc: dict) -> None:
    """Publish the manifest's outputs into ``ctx`` as the stages would have."""
    ctx.publish(ExpertTrajectories(tuple(doc["experts"])))
    if "walk_tasks" in doc:  # the engine walks exactly these (the import's tasks or the train split's first N)
        ctx.publish(ImportedTasks(tuple(Task.model_validate(t) for t in doc["walk_tasks"])))
    if "agent" in doc:
        spec, model = ctx.recipe.policy, agent_model(build_dir, doc)

        def load():
            from steca_data.policies.factory import make_policy

            return make_policy(spec, model)

        ctx.publish(AgentHandle(doc["agent"]["policy_id"], model, load))


def built_experts(build_dir: Path) -> BuiltExperts:
    """The stage that gives a new build over this build's cache the same experts and walked tasks, read from the
    cache (an iterated method's rounds): the recipe's input files are not read again."""
    doc = read_manifest(build_dir)
    if doc is None:
        raise FileNotFoundError(f"{build_dir / MANIFEST}: missing (built by an older steca-data: build it again)")
    tasks = tuple(Task.model_validate(t) for t in doc.get("walk_tasks", []))
    return BuiltExperts(tuple(doc["experts"]), tasks)


@contextmanager
def open_build_dir(
    recipe: Recipe, build_dir: Path, cache_path: Path, shared: Cache | None = None
) -> Iterator[BuildContext]:
    """A read-only context over a finished build from its manifest and cache alone (no stage is compiled).

    ``shared``: a handle on the same file that the caller holds open (and closes): DuckDB refuses a read-only
    and a read-write handle on one file in one process, so a process that writes to the cache reads through
    its own handle."""
    doc = read_manifest(build_dir)
    if doc is None:
        raise FileNotFoundError(f"{build_dir / MANIFEST}: missing (built by an older steca-data: build it again)")
    with nullcontext(shared) if shared is not None else Cache(cache_path, read_only=True) as cache:
        ctx = BuildContext(recipe, cache)
        try:
            publish(ctx, build_dir, doc)
            yield ctx
        finally:
            ctx.close()
