"""The architecture, checked: layers import one way, no private names cross modules, functions stay short.

Layers, lowest first (a module may import its own layer and those below it, never above):
core → cache → backends (envs, policies, writers, importers) → recipe → training → episodes → executors →
stages → build → export → cli. ``steca_train`` (train/) sits on top and may import anything; ``steca_data`` never
imports ``steca_train``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

LAYERS = [
    {"core"},
    {"cache"},
    {"envs", "policies", "writers", "importers"},
    {"recipe"},
    {"training"},
    {"episodes"},
    {"executors"},
    {"stages"},
    {"build"},
    {"export"},
    {"cli"},
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
MAX_FUNCTION_LINES = 80


def _modules(root: str):
    for path in sorted((REPO / root).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (type hints may name a higher layer)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(tree: ast.AST):
    """(imported module, names) for every import that runs, including those inside functions."""
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _layer(path: Path) -> str | None:
    parts = path.relative_to(REPO / "steca_data").parts
    return parts[0] if len(parts) > 1 else None


def test_layers_import_downwards_only():
    wrong = []
    for path, tree in _modules("steca_data"):
        own = _layer(path)
        if own is None:
            continue
        for module, _ in _imports(tree):
            parts = module.split(".")
            if parts[0] == "steca_train":
                wrong.append(f"{path.relative_to(REPO)} imports {module} (the data package never imports the trainer)")
            elif parts[0] == "steca_data" and len(parts) > 1 and parts[1] in RANK and RANK[parts[1]] > RANK[own]:
                wrong.append(f"{path.relative_to(REPO)} ({own}) imports {module} ({parts[1]} is a higher layer)")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for root in ("steca_data", "train"):
        for path, tree in _modules(root):
            for module, names in _imports(tree):
                if module.split(".")[0] in ("steca_data", "steca_train"):
                    private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                    wrong += [f"{path.relative_to(REPO)}: {module}.{n}" for n in private]
    assert not wrong, "\n".join(wrong)


def test_no_function_is_longer_than_80_lines():
    long = []
    for root in ("steca_data", "train"):
        for path, tree in _modules(root):
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)


def test_every_stage_module_fills_in_the_template():
    """Stages are classes of ``Stage`` that declare a table and do not override the run loop, except import's
    failure count."""
    from steca_data.build.builder import compile_stages
    from steca_data.recipe.model import load_recipe
    from steca_data.stages.base import Stage

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")
    for stage in compile_stages(recipe):
        assert isinstance(stage, Stage) and stage.table
        assert type(stage).plan is Stage.plan, f"{type(stage).__name__} rewrites plan()"
        assert type(stage)._run is Stage._run, f"{type(stage).__name__} rewrites the run loop"


def test_every_shipped_recipe_compiles_to_a_wired_stage_list():
    """Each stage declares the outputs it reads (``needs``) and gives (``gives``); compiling checks that every
    need is given by an earlier stage, for every recipe we ship."""
    from steca_data.build.builder import compile_stages
    from steca_data.core.errors import RecipeError
    from steca_data.recipe.model import load_recipe

    compiled = 0
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        try:
            stages = compile_stages(load_recipe(path))
        except RecipeError:  # a recipe whose input file is not on this machine (e.g. a published test set)
            continue
        given = set()
        for stage in stages:
            assert set(stage.needs) <= given, f"{path.name}: {stage.name} needs what no earlier stage gives"
            given |= set(stage.gives)
        compiled += 1
    assert compiled >= 5


def test_a_stage_reads_only_what_it_declares(tmp_path):
    """Reading an undeclared output, or a stage list missing a needed one, is a wiring error, not a quiet
    look-up by type in a shared context."""
    import pytest

    from steca_data.cache.store import Cache
    from steca_data.recipe.model import load_recipe
    from steca_data.stages.base import BuildContext, MissingInput, Stage, UndeclaredInput, check_wiring
    from steca_data.stages.experts import ExpertTrajectories
    from steca_data.stages.proposals import ProposalStage

    class Peeking(Stage):
        name, table = "peeking", "trajectories"

        def units(self, ctx):
            ctx.find(ExpertTrajectories)
            return []

        def compute(self, ctx, todo, emit):
            pass

        def store(self, ctx, unit, result):
            return True

    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")
    with Cache(tmp_path / "c.duckdb") as cache:
        ctx = BuildContext(recipe, cache)
        ctx.publish(ExpertTrajectories(()))
        with pytest.raises(UndeclaredInput, match="peeking reads ExpertTrajectories"):
            Peeking().plan(ctx)
        Peeking.needs = (ExpertTrajectories,)
        assert Peeking().plan(ctx).total == 0
        ctx.close()
    with pytest.raises(MissingInput, match="proposals needs ExpertTrajectories, AgentHandle"):
        check_wiring([ProposalStage()])


def test_each_stage_owns_its_tables():
    """The cache module holds only its own DDL; every other table is declared once, beside its stage."""
    from steca_data.build.tables import all_tables
    from steca_data.cache.store import CORE_TABLES

    names = [t.name for t in all_tables()]
    assert len(names) == len(set(names))
    store = (REPO / "steca_data" / "cache" / "store.py").read_text()
    assert store.count("CREATE TABLE") == len(CORE_TABLES) and "CREATE OR REPLACE VIEW" not in store
    assert {"rollouts", "proposals", "reflections", "gold_paths", "step_rewards"} <= set(names)


def test_the_experiments_steps_fill_in_the_same_template():
    """train, evaluate, calibrate: stages of the build's template (units with keys, the one run loop)."""
    from steca_data.stages.base import Stage
    from steca_train import steps

    found = [c for c in vars(steps).values() if isinstance(c, type) and issubclass(c, steps.ExperimentStep)]
    assert {c.__name__ for c in found} >= {"TrainStep", "EvalStep", "CasesStep", "RecoveryStep", "NllStep"}
    for cls in found:
        assert issubclass(cls, Stage) and cls.plan is Stage.plan and cls.run is Stage.run, cls.__name__
        assert cls._run is Stage._run and cls.table == "artifacts", cls.__name__


# A method's name (as a string the code uses, not prose) appears only in its homes: its training module, its data
# module and the two registries. Allowed elsewhere, each with its reason:
NAME_ALLOWED = {
    ("eto", "steca_data/envs/scienceworld/"): "ETO's 24 task types: a benchmark split of the env plugin named "
    "after the paper (env.game: eto), not the method",
    ("rft", "steca_data/export/sharegpt.py"): "`steca_rft.json`, the file name STeCa's own training scripts read",
    ("steca-sft", "train/methods/steca_dpo.py"): "steca-dpo's `starts_from`: it continues steca-sft's model",
}
# Names that are also ordinary words of this code base, so a string check cannot tell them apart: the recipe's
# warm-up section `sft`, a trajectory's `step`, the project's own name `steca`. Their modules exist all the same.
NAME_NOT_CHECKED = {"sft", "step", "steca"}


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip


def _homes(name: str) -> set[str]:
    from steca_data.export.methods import METHOD_DATA
    from steca_train.methods import METHODS

    homes = {"train/methods/__init__.py", "steca_data/export/methods/__init__.py"}
    for registry, root in ((METHODS, "train/methods"), (METHOD_DATA, "steca_data/export/methods")):
        if name in registry:
            homes.add(f"{root}/{registry[name].partition(':')[0].rsplit('.', 1)[1]}.py")
    return homes


def test_method_names_appear_only_in_their_own_modules():
    """The experiment runner, the CLI, the report and the exports iterate the registries; none names a method."""
    import re

    from steca_train.methods import method_names

    names = [n for n in method_names() if n not in NAME_NOT_CHECKED]
    assert {"rft", "steca-sft", "steca-dpo", "ipr", "eto"} <= set(names)
    patterns = {n: re.compile(rf"(?<![A-Za-z0-9-]){re.escape(n)}(?![A-Za-z0-9-])") for n in names}
    wrong = []
    for root in ("steca_data", "train"):
        for path, tree in _modules(root):
            rel, docs = path.relative_to(REPO).as_posix(), _docstrings(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docs:
                    continue
                for name, pattern in patterns.items():
                    if not pattern.search(node.value) or rel in _homes(name):
                        continue
                    if any(name == n and rel.startswith(where) for n, where in NAME_ALLOWED):
                        continue
                    wrong.append(f"{rel}:{node.lineno} names method {name!r}: {node.value[:60]!r}")
    assert not wrong, "\n".join(wrong)


def test_every_method_of_the_data_registry_is_a_training_method():
    from steca_data.export.methods import METHOD_DATA, method_data
    from steca_train.methods import method, method_names

    for name in METHOD_DATA:
        assert name in method_names() and method_data(name).method == name
        if method(name).trainer == "dpo":
            assert method(name).kinds, name
