"""Recipes: a YAML file compiled into a validated ``Recipe``.

A recipe is rejected before any work starts. Every problem is reported as one line naming the recipe
file, the line, the YAML path of the field and what is wrong, e.g.::

    recipes/bad.yaml:7: env.params.numLocations: must be between 1 and 3 for twc (got 9)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from steca_data.core.errors import RecipeError
from steca_data.core.section import Section
from steca_data.envs.registry import UnknownEnvironment, plugin, plugin_names
from steca_data.envs.spec import EnvSpec
from steca_data.recipe.agent import EvalSpec, ModelSpec, PolicySpec, SFTSpec
from steca_data.recipe.checks import recipe_problems
from steca_data.recipe.engine import (
    ChatModelSpec,
    DeviationSpec,
    LabelSpec,
    ProposalSpec,
    ReflectionSpec,
    RewardSpec,
    RolloutSpec,
)
from steca_data.recipe.executor import ExecutorSpec
from steca_data.recipe.messages import Origin, format_validation
from steca_data.recipe.reinforce import ExperimentSpec, ReinforceSpec
from steca_data.recipe.yaml_io import YamlProblem, load_yaml, parse_value, read_text

_Section = Section  # unknown fields rejected, booleans are not numbers


class ThoughtSpec(ChatModelSpec):
    """Where the Thought of each expert step comes from."""

    backend: Literal["template", "openai"] = "template"


class ExpertSpec(_Section):
    source: Literal["env", "sharegpt"] = "env"
    path: str | None = Field(None, description="ShareGPT/ETO JSON file (source: sharegpt), relative to the recipe.")
    thoughts: ThoughtSpec = Field(default_factory=ThoughtSpec)

    @model_validator(mode="after")
    def _path_for_files(self) -> ExpertSpec:
        if self.source == "sharegpt" and not self.path:
            raise ValueError("path: required when source is 'sharegpt'")
        return self


class PromptSpec(_Section):
    include_example: bool = Field(True, description="Put the in-context example trajectory in the system prompt.")
    history: int | None = Field(
        None, ge=0, description="Keep the task and only the last N observations (training and inference); None: all."
    )


class OutputSpec(_Section):
    dir: str | None = Field(None, description="Build directory; default builds/<recipe name>.")
    cache: str | None = Field(None, description="DuckDB file; default <dir>/cache.duckdb.")
    formats: list[Literal["arrow", "parquet"]] = Field(default_factory=lambda: ["arrow", "parquet"])
    push_to_hub: str | None = Field(None, description="Hub repo id to push to after a successful build.")
    private: bool = True


class FailureSpec(_Section):
    """What a build does with units that fail: an environment crash, an HTTP error, an unsolvable task."""

    retry: bool = Field(True, description="Compute units that failed in an earlier build again; false: final.")
    max_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Exit 1 when more than this fraction of a stage's units fail."
    )
    attempts: int = Field(3, ge=1, le=10, description="Tries within a build for transient failures (crash, HTTP).")
    backoff_s: float = Field(2.0, ge=0.0, le=600.0, description="Wait before the first retry; doubles each time.")


DatasetName = Literal["expert", "dc", "de", "ds"]


class Recipe(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    env: SerializeAsAny[EnvSpec]  # the registered plugin's subclass; dumped with all its fields
    experts: ExpertSpec = Field(default_factory=ExpertSpec)
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    datasets: list[DatasetName] = Field(default_factory=lambda: ["expert"])
    output: OutputSpec = Field(default_factory=OutputSpec)
    failures: FailureSpec = Field(default_factory=FailureSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)  # where it runs: never shapes the data
    # the base agent: a model to make (model, sft) or to load, how it plays (policy), how it is judged (eval)
    model: ModelSpec = Field(default_factory=ModelSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    sft: SFTSpec = Field(default_factory=SFTSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    # the STeCa engine (read only when datasets include dc, de or ds)
    rollouts: RolloutSpec = Field(default_factory=RolloutSpec)
    proposals: ProposalSpec = Field(default_factory=ProposalSpec)
    deviation: DeviationSpec = Field(default_factory=DeviationSpec)
    labels: LabelSpec = Field(default_factory=LabelSpec)
    reflection: ReflectionSpec = Field(default_factory=ReflectionSpec)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    # closing the loop: reinforced training and baselines, and the experiment that compares them
    reinforce: ReinforceSpec = Field(default_factory=ReinforceSpec)
    experiment: ExperimentSpec = Field(default_factory=ExperimentSpec)

    # Where the recipe was read from; not part of the recipe's content or hash.
    source_path: Path | None = Field(None, exclude=True)

    @field_validator("env", mode="wrap")
    @classmethod
    def _env_by_name(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> EnvSpec:
        """The plugin that ``env.name`` names validates the section, so each environment brings its fields.

        Looked up at validation time (not a union fixed at import), so a registry line is all it takes.
        """
        if isinstance(value, EnvSpec) and type(value) is not EnvSpec:
            return value
        if not isinstance(value, dict):
            return handler(value)
        name = value.get("name")
        if name is None:
            raise ValueError(f"name: required field is missing (known: {', '.join(plugin_names())})")
        try:
            spec = plugin(str(name)).spec
        except UnknownEnvironment as exc:
            raise ValueError(f"name: {exc}") from None
        return spec.model_validate(value)

    @property
    def uses_engine(self) -> bool:
        return any(name in self.datasets for name in ("dc", "de", "ds"))

    @property
    def build_dir(self) -> Path:
        return Path(self.output.dir or f"builds/{self.name}")

    @property
    def cache_path(self) -> Path:
        return Path(self.output.cache) if self.output.cache else self.build_dir / "cache.duckdb"

    def resolve(self, relative: str) -> Path:
        """A path named in the recipe, taken relative to the recipe file."""
        path = Path(relative)
        if path.is_absolute() or self.source_path is None:
            return path
        return self.source_path.parent / path

    def content(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """Hash of everything that shapes the data (not where it is written, nor the description)."""
        # agent training, evaluation and experiment settings shape no data
        skip = ("output", "failures", "executor", "description", "model", "sft", "eval", "reinforce", "experiment")
        skip += ("labels",)  # ground truth about the data, not part of it
        content = {k: v for k, v in self.content().items() if k not in skip}
        for name, value in content.items():
            section = getattr(self, name, None)
            if isinstance(section, Section) and isinstance(value, dict):
                content[name] = section.fingerprint_content(value)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- loading


def _set_path(data: dict, dotted: str, value: Any, item: str) -> None:
    keys = dotted.split(".")
    if not all(k.strip() for k in keys):
        raise ValueError(f"--set {item}: {dotted!r} is not a field path (e.g. env.max_steps=40)")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):  # datasets.1=dc
            if last:
                node[int(key)] = value
            node = node[int(key)]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"--set {item}: {'.'.join(keys[:i])} is not a mapping, cannot set {dotted}")
        if last:
            node[key] = value
        elif node.get(key) is None:
            node[key] = {}
        node = node.get(key)


def _apply_overrides(data: dict, overrides: list[str] | tuple[str, ...], origin: Origin) -> None:
    """``--set a.b=value`` (value read as YAML) into the parsed recipe; remembered for error lines."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError([f"{origin.where}: --set {item!r}: expected KEY=VALUE, e.g. env.max_steps=40"])
        key = key.strip()
        try:
            _set_path(data, key, parse_value(raw), item)
        except ValueError as exc:
            raise RecipeError([f"{origin.where}: {exc}"]) from None
        origin.overrides[key] = item


def _read(path: Path, origin: Origin) -> dict:
    """The recipe file as a mapping, each problem a ``RecipeError`` line with its line number."""
    where = origin.where
    if not path.exists():
        raise RecipeError([f"{where}: recipe file not found"])
    try:
        data, origin.lines = load_yaml(read_text(path))
    except YamlProblem as exc:
        line = f":{exc.line}" if exc.line else ""
        field = f" {'.'.join(exc.path)}:" if exc.path else ""
        raise RecipeError([f"{where}{line}:{field} {exc.message}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError([f"{where}: a recipe must be a mapping of sections, got {type(data).__name__}"])
    return data


def _check(recipe: Recipe, origin: Origin) -> None:
    """Checks that need files or the environment plugin; the first problem found is reported."""
    problems = recipe_problems(recipe)
    if problems:
        raise RecipeError([origin.problem(dotted, message) for dotted, message in problems])
    try:
        plugin(recipe.env.name).prepare(recipe.env, recipe.resolve, origin.where)
    except RecipeError as exc:  # "file: env.x: message" from the plugin: add the field's line
        raise RecipeError([_locate(line, origin) for line in exc.lines]) from None


def _locate(line: str, origin: Origin) -> str:
    head = f"{origin.where}: "
    if not line.startswith(head):
        return line
    dotted, sep, message = line[len(head) :].partition(": ")
    if not sep or " " in dotted or not dotted.startswith("env"):
        return line
    return origin.problem(dotted, message)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = (), check_files: bool = True) -> Recipe:
    """Read, override (``a.b=value``, value parsed as YAML) and validate a recipe file.

    Raises ``RecipeError`` (one line per problem) for anything knowable before work: unreadable or
    malformed YAML, duplicate keys, alias bombs, unknown fields, bad values, missing files and models
    (``check_files=False``: not the files, for the recipe a finished build keeps, which is read, not built).
    """
    path = Path(path)
    origin = Origin(str(path))
    data = _read(path, origin)
    _apply_overrides(data, overrides, origin)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation(exc, origin)) from None
    except RecursionError:
        raise RecipeError([f"{origin.where}: (top level): nested too deeply"]) from None
    recipe.source_path = path.resolve()
    if check_files:
        _check(recipe, origin)
    return recipe
