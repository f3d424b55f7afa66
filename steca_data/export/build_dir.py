"""Read a finished build directory: its recipe, its dataset rows and (read-only) its DuckDB cache.

Exports never compute anything and never write into the build: everything they need is either a row
of ``dataset/`` or a unit of ``cache.duckdb``. Rows are sorted by their stable ids here, once, so every
format sees them in the same order and writes the same bytes for the same build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from steca_data.recipe.model import Recipe, RecipeError, load_recipe


class ExportError(ValueError):
    """A problem with the user's input, reported as one line (exit status 2), before any work."""


@dataclass
class BuildDir:
    """A build directory as the exporters see it."""

    path: Path
    recipe: Recipe
    rows: dict[str, list[dict]] = field(repr=False)
    shared_cache: object = field(default=None, repr=False)  # a ``Cache`` handle the caller holds (``share``)

    # ------------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: Path, overrides: list[str] | tuple[str, ...] = ()) -> BuildDir:
        """Check that ``path`` is a build (``dataset/`` + ``recipe.yaml``) and load its rows; ``overrides``
        (``--set a.b=value``) apply to its recipe (training settings, say)."""
        path = Path(path)
        if not path.is_dir():
            raise ExportError(f"{path}: not a directory (expected a build directory such as builds/quickstart)")
        if not (path / "dataset" / "dataset_dict.json").is_file() or not (path / "recipe.yaml").is_file():
            raise ExportError(f"{path}: not a steca-data build (no dataset/ or recipe.yaml; run `steca-data build`)")
        recipe = _read_recipe(path, overrides)
        return cls(path=path, recipe=recipe, rows=_read_rows(path / "dataset"))

    # ----------------------------------------------------------------------------------------- metadata
    @property
    def recipe_fingerprint(self) -> str:
        """The fingerprint the rows were built under (their provenance), else the recipe file's."""
        for rows in self.rows.values():
            if rows:
                return rows[0]["provenance"]["recipe_hash"]
        return self.recipe.fingerprint()

    @property
    def cache_path(self) -> Path | None:
        """The build's DuckDB file: ``<build>/cache.duckdb``, else the recipe's ``output.cache`` if it exists."""
        candidates = [self.path / "cache.duckdb"]
        if self.recipe.output.cache:
            candidates.append(Path(self.recipe.output.cache))
        return next((p for p in candidates if p.is_file()), None)

    def require_cache(self, purpose: str) -> Path:
        path = self.cache_path
        if path is None:
            raise ExportError(f"{self.path}: {purpose} reads the build's cache, and no cache.duckdb was found")
        return path

    def counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.rows.items()}

    # ------------------------------------------------------------------------------------------ the cache
    @cached_property
    def engine(self):
        """The read-only view of the engine's units (proposals, step rewards, rollouts) behind the rows."""
        from .engine_view import EngineView

        return EngineView(self)

    @cached_property
    def manifest(self) -> dict | None:
        """The build's ``build.json`` (its walked tasks and base agent), None for a build that predates it."""
        from steca_data.build.manifest import read_manifest

        return read_manifest(self.path)

    def base_agent(self) -> tuple[str, str | None] | None:
        """(policy id, model directory or served name) of the agent the engine explored with; None if unknown."""
        from steca_data.build.manifest import agent_model

        if not self.manifest or "agent" not in self.manifest:
            return None
        return self.manifest["agent"]["policy_id"], agent_model(self.path, self.manifest)

    def share(self, cache) -> BuildDir:
        """Read the build's cache through ``cache``, a handle on the same file that the caller holds open (and
        closes): a process that writes to the cache (an experiment) cannot also open it read-only."""
        self.close()
        self.shared_cache = cache
        return self

    def close(self) -> None:
        """Close the cache (a later read opens it again): a process may then open it for writing."""
        engine = self.__dict__.pop("engine", None)
        if engine is not None:
            engine.close()


def _read_recipe(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """The resolved recipe the build wrote, pointed at where the build is now (it may have moved).

    Validated as a model only: the file checks of ``load_recipe`` (expert files, game trees) concern
    building, not reading what was built.
    """
    try:
        recipe = load_recipe(path / "recipe.yaml", overrides, check_files=False)
    except RecipeError as exc:
        raise ExportError(exc.lines[0] if exc.lines else f"{path / 'recipe.yaml'}: not a valid recipe") from None
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a usable recipe
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{path / 'recipe.yaml'}: not a valid recipe: {first}") from None
    recipe = recipe.model_copy(update={"output": recipe.output.model_copy(update={"dir": str(path)})})
    recipe.source_path = (path / "recipe.yaml").resolve()
    return recipe


def _read_rows(dataset_dir: Path) -> dict[str, list[dict]]:
    """Every split of the saved DatasetDict as plain rows, sorted by id (ids are unique per dataset)."""
    from datasets import load_from_disk
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    try:
        dd = load_from_disk(str(dataset_dir))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{dataset_dir}: cannot load the dataset: {exc}") from None
    names = json.loads((dataset_dir / "dataset_dict.json").read_text()).get("splits", list(dd))
    return {name: sorted(dd[name].to_list(), key=lambda r: r["id"]) for name in names if name in dd}
