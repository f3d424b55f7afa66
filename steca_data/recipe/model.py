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

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from steca_data.core.errors import RecipeError
from steca_data.envs.registry import UnknownEnvironment, plugin, plugin_names
from steca_data.envs.spec import EnvSpec
from steca_data.recipe.agent import EvalSpec, ModelSpec, PolicySpec, SFTSpec
from steca_data.recipe.engine import ChatModelSpec, DeviationSpec, ProposalSpec, ReflectionSpec, RewardSpec, RolloutSpec
from steca_data.recipe.reinforce import ExperimentSpec, ReinforceSpec


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    # the base agent: a model to make (model, sft) or to load, how it plays (policy), how it is judged (eval)
    model: ModelSpec = Field(default_factory=ModelSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    sft: SFTSpec = Field(default_factory=SFTSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    # the STeCa engine (read only when datasets include dc, de or ds)
    rollouts: RolloutSpec = Field(default_factory=RolloutSpec)
    proposals: ProposalSpec = Field(default_factory=ProposalSpec)
    deviation: DeviationSpec = Field(default_factory=DeviationSpec)
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
        skip = ("output", "description", "model", "sft", "eval", "reinforce", "experiment")
        content = {k: v for k, v in self.content().items() if k not in skip}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------- loading


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map YAML paths to 1-based line numbers, so errors can point at the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
                index[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return index


def _set_path(data: dict, dotted: str, value: Any, where: str) -> None:
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise RecipeError([f"{where}: {'.'.join(keys[: i + 1])} is not a mapping, cannot set {dotted}"])
        node = child
    node[keys[-1]] = value


def _describe(err: dict) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind not in ("value_error",) and "input" in err:
        shown = repr(err["input"])
        if len(shown) <= 60:
            msg += f" (got {shown})"
    return msg


def _format_errors(exc: ValidationError, where: str, lines: dict[tuple[str, ...], int], set_keys: set[str]):
    out = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        msg = _describe(err)
        # model-level validators report "sub.path: message"; fold the sub path into the location
        if err["type"] == "value_error" and ": " in msg and not msg.startswith(" "):
            head, rest = msg.split(": ", 1)
            if " " not in head:
                loc, msg = (*loc, *head.split(".")), rest
        dotted = ".".join(loc) or "(top level)"
        line = next((lines[loc[:k]] for k in range(len(loc), 0, -1) if loc[:k] in lines), None)
        origin = " (from --set)" if any(dotted == k or dotted.startswith(k + ".") for k in set_keys) else ""
        prefix = f"{where}:{line}" if line and not origin else where
        out.append(f"{prefix}: {dotted}: {msg}{origin}")
    return out


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override (``a.b=value``, value parsed as YAML) and validate a recipe file."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise RecipeError([f"{where}: recipe file not found"])
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError([f"{where}{loc}: invalid YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError([f"{where}: a recipe must be a mapping of sections, got {type(data).__name__}"])
    set_keys = set()
    for item in overrides:
        if "=" not in item:
            raise RecipeError([f"{where}: --set {item!r}: expected KEY=VALUE, e.g. env.max_steps=40"])
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_path(data, key.strip(), value, f"{where}: --set {key}")
        set_keys.add(key.strip())
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_format_errors(exc, where, _line_index(text), set_keys)) from None
    recipe.source_path = path.resolve()
    plugin(recipe.env.name).prepare(recipe.env, recipe.resolve, where)
    if recipe.experts.source == "sharegpt" and not recipe.resolve(recipe.experts.path).is_file():
        raise RecipeError([f"{where}: experts.path: file not found: {recipe.resolve(recipe.experts.path)}"])
    return recipe
