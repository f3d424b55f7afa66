"""Checks a recipe's schema cannot make: paths that must exist (or must not be files), before any work.

Each returns problems as ``(yaml.path, message)``; the loader turns them into lines with the field's line
in the file or the ``--set`` that gave it. Paths are taken as the build takes them: ``experts.path``
relative to the recipe file, output and model paths relative to the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

Problem = tuple[str, str]


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (itself included) that is not a directory, if any."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _model_dir_problem(raw: str) -> str | None:
    path = Path(raw).expanduser()
    if not path.exists():
        return f"no model at {raw} (a local Hugging Face model directory)"
    if not path.is_dir() or not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        return f"{raw} is not a model directory (no config.json or adapter_config.json)"
    return None


def _looks_local(name: str) -> bool:
    """vLLM also takes Hub ids (``org/model``); a path-looking name must exist here."""
    return name.startswith(("/", "./", "../", "~")) or Path(name).exists()


def output_problems(recipe) -> list[Problem]:
    """``output.dir`` must be (or become) a directory; ``output.cache`` a file, not a directory."""
    problems: list[Problem] = []
    blocker = _file_in_the_way(recipe.build_dir)
    if blocker is not None:
        problems.append(("output.dir", f"{blocker} is a file, so {recipe.build_dir} cannot be a build directory"))
    if recipe.output.cache:
        cache = recipe.cache_path
        if cache.is_dir():
            problems.append(("output.cache", f"{cache} is a directory; name the DuckDB file in it, e.g. cache.duckdb"))
        elif (blocker := _file_in_the_way(cache.parent)) is not None:
            problems.append(("output.cache", f"{blocker} is a file, so {cache} cannot be created"))
    return problems


def model_problems(recipe) -> list[Problem]:
    """Local models the recipe names must exist: ``model.path``, ``policy.model``, the embedding model."""
    problems: list[Problem] = []
    if recipe.model.path and (problem := _model_dir_problem(recipe.model.path)):
        problems.append(("model.path", problem))
    policy = recipe.policy
    local = policy.backend == "transformers" or (policy.backend == "vllm" and _looks_local(policy.model or ""))
    if policy.model and local and (problem := _model_dir_problem(policy.model)):
        problems.append(("policy.model", problem))
    embedding = recipe.reward.embedding_model or ""
    local = recipe.reward.distance == "embedding" and _looks_local(embedding)
    if local and (problem := _model_dir_problem(embedding)):
        problems.append(("reward.embedding_model", problem))
    return problems


def expert_problems(recipe) -> list[Problem]:
    """An imported expert file must exist and be a file."""
    if recipe.experts.source != "sharegpt":
        return []
    path = recipe.resolve(recipe.experts.path)
    if path.is_dir():
        return [("experts.path", f"{path} is a directory, not a ShareGPT/ETO JSON file")]
    if not path.is_file():
        return [("experts.path", f"file not found: {path}")]
    return []


def key_problems(recipe) -> list[Problem]:
    """An OpenAI-compatible section without ``base_url`` talks to api.openai.com and needs its key now,
    not after the environment work before it."""
    sections = [("experts.thoughts", recipe.experts.thoughts)]
    if "dc" in recipe.datasets:
        sections.append(("reflection", recipe.reflection))
    return [
        (f"{name}.api_key_env", f"${spec.api_key_env} is not set (set it, or point {name}.base_url at a server)")
        for name, spec in sections
        if spec.backend == "openai" and not spec.base_url and not os.environ.get(spec.api_key_env)
    ]


def executor_problems(recipe) -> list[Problem]:
    """``executor.kind: ray`` needs Ray installed here (the driver) before any work starts."""
    import importlib.util

    if recipe.executor.kind == "ray" and importlib.util.find_spec("ray") is None:
        return [("executor.kind", "ray is not installed: pip install 'steca-data[ray]' (or use kind: local)")]
    return []


def planner_problems(recipe) -> list[Problem]:
    """Ground-truth labels and the eps_expert policy need an environment that plans from any state, and labels
    need the engine's proposals to label."""
    from steca_data.envs.registry import plugin

    name = recipe.env.name
    no_planner = plugin(name).planner is None
    problems: list[Problem] = []
    if recipe.policy.backend == "eps_expert" and no_planner:
        problems.append(("policy.backend", f"eps_expert needs a planner and environment {name} has none"))
    if recipe.labels.planner and no_planner:
        problems.append(("labels.planner", f"environment {name} has no planner to label actions with (set false)"))
    elif recipe.labels.planner and not recipe.uses_engine:
        problems.append(("labels.planner", "labels judge proposals: datasets must include dc, de or ds"))
    return problems


def recipe_problems(recipe) -> list[Problem]:
    """Everything knowable about a validated recipe before work starts, in file order of sections."""
    problems = expert_problems(recipe) + key_problems(recipe) + model_problems(recipe) + output_problems(recipe)
    return problems + executor_problems(recipe) + planner_problems(recipe)
