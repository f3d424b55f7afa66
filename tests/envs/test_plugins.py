"""Environment plugins: every registered one loads, recipes pick theirs by name, a new one is one module plus
one registry line, and environment names appear nowhere outside their own folders."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from steca_data.envs import prompting, registry
from steca_data.envs.plugin import EnvPlugin
from steca_data.envs.spec import EnvSpec
from steca_data.recipe.model import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]

TOY = """\
name: toy
env:
  name: toy_corridor
  length: 4
  splits:
    train: {fold: train, count: 3}
    unseen: {fold: test, count: 2}
"""


def _error_line(path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, list(overrides))
    assert len(info.value.lines) == 1, info.value.lines
    return info.value.lines[0]


@pytest.mark.parametrize("name", registry.plugin_names())
def test_every_registered_plugin_loads(name):
    plugin = registry.plugin(name)
    assert isinstance(plugin, EnvPlugin) and plugin.name == name
    assert issubclass(plugin.spec, EnvSpec) and plugin.spec.model_fields["name"].default == name
    game = plugin.spec.model_fields["game"].default
    templates = plugin.action_templates(game)
    assert templates and all(isinstance(t, str) and t for t in templates)
    assert plugin.prompt_version(game) and prompting.prompt_version(name, game) == plugin.prompt_version(game)
    assert "\n".join(f"- {t}" for t in templates) in prompting.system_prompt(name, game, False)
    assert plugin.spec in registry.env_specs()


def test_plugins_import_no_simulator():
    """Validating recipes and building the CLI loads every plugin module, but no simulator package."""
    code = (
        "import sys\n"
        "from steca_data.cli.main import app\n"
        "from steca_data.envs.registry import env_specs\n"
        "from steca_data.recipe.model import load_recipe\n"
        "env_specs(); load_recipe('recipes/quickstart.yaml')\n"
        "heavy = {'alfworld', 'textworld', 'fast_downward', 'py4j', 'textworld_express', 'scienceworld'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_unknown_and_missing_env_names_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    line = _error_line(path, TOY)
    known = "(known: alfworld, scienceworld, textworld_express, virtualhome)"
    assert line == f"{path}:3: env.name: unknown environment 'toy_corridor' {known}"
    line = _error_line(path, TOY.replace("  name: toy_corridor\n", ""))
    assert line == f"{path}:2: env.name: required field is missing {known}"


def test_env_fields_belong_to_their_environment(tmp_path):
    quickstart = REPO / "recipes" / "quickstart.yaml"
    with pytest.raises(RecipeError, match=r"env\.data_dir: unknown field \(from --set env\.data_dir=games\)"):
        load_recipe(quickstart, ["env.data_dir=games"])
    alfworld = REPO / "recipes" / "alfworld.yaml"
    with pytest.raises(RecipeError, match=r"env\.jvm_max_heap: unknown field \(from --set env\.jvm_max_heap=1g\)"):
        load_recipe(alfworld, ["env.jvm_max_heap=1g"])


@pytest.fixture
def toy(monkeypatch):
    """Register the test-only plugin with one registry entry, as a new environment would be."""
    monkeypatch.setitem(registry.PLUGINS, "toy_corridor", "tests.envs.toy_plugin:ToyPlugin")
    from tests.envs import toy_plugin

    toy_plugin.ToyPlugin.prepared.clear()
    return toy_plugin


def test_a_new_plugin_is_usable_by_name(toy, tmp_path):
    from steca_data.core.schemas import Step, Trajectory
    from steca_data.envs import make_backend, replay
    from steca_data.writers.thoughts import template_thoughts

    path = tmp_path / "toy.yaml"
    path.write_text(TOY)
    recipe = load_recipe(path)
    assert isinstance(recipe.env, toy.ToySpec) and recipe.env.length == 4
    assert toy.ToyPlugin.prepared == [str(tmp_path)]  # prepare ran, with recipe-relative paths
    assert recipe.content()["env"]["length"] == 4  # the dump carries the plugin's own fields
    assert recipe.fingerprint() != load_recipe(path, ["env.length=5"]).fingerprint()

    tasks = registry.list_tasks(recipe.env, "unseen")
    assert [t.task_id for t in tasks] == ["toy/test/0", "toy/test/1"] and all(t.unseen for t in tasks)
    assert registry.env_version(recipe.env) == "toy 1"
    backend = make_backend(recipe.env)
    session = backend.new_session()
    gold = backend.gold_actions(session, tasks[0])
    assert replay(session, tasks[0], gold).success

    assert prompting.prompt_version("toy_corridor", "corridor") == "toy-v1"
    assert "- go DIRECTION\n- wait\n" in prompting.system_prompt("toy_corridor", "corridor")
    steps = [Step(action=a, observation="o") for a in ("go east", "wait")]
    traj = Trajectory(
        trajectory_id="t", source="expert", task=tasks[0], instruction="reach the exit", initial_observation="o",
        steps=steps, outcome_reward=0.0, success=False, env_name="toy_corridor", env_version="toy 1",
    )  # fmt: skip
    assert template_thoughts(traj) == ["The exit is further east.", "Next, I will wait."]
    messages = prompting.render_messages(traj, include_example=False)
    assert messages[0].content == prompting.system_prompt("toy_corridor", "corridor", False)


def test_a_new_plugin_reports_its_errors_in_recipe_format(toy, tmp_path):
    path = tmp_path / "toy.yaml"
    line = _error_line(path, TOY.replace("length: 4", "length: 40"))
    assert line.startswith(f"{path}:4: env.length: Input should be less than or equal to 10")
    line = _error_line(path, TOY.replace("unseen: {fold: test, count: 2}", "unseen: {fold: train, count: 2}"))
    assert line.startswith(f"{path}:7: env.splits.unseen: overlaps splits.train in fold 'train'")
    line = _error_line(path, TOY, ("env.marker=missing",))
    assert line == f"{path}: env.marker: no such marker (from --set env.marker=missing)"
    line = _error_line(path, TOY.replace("toy_corridor", "toy_coridor"))
    known = "(known: alfworld, scienceworld, textworld_express, toy_corridor, virtualhome)"
    assert f"unknown environment 'toy_coridor' {known}" in line


def test_cli_takes_commands_from_plugins():
    from steca_data.cli.main import app

    assert "alfworld" in {group.name for group in app.registered_groups}


# ------------------------------------------------------------------------- names stay in their folders

ENV_NAMES = {"textworld_express", "alfworld", "twc", "cookingworld", "coin", "twx", "virtualhome", "sciworld"}
_PROSE_KEYWORDS = {"description", "help"}


def _skipped_strings(tree: ast.AST) -> set[int]:
    """Docstrings and description/help texts: prose may give environments as examples."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
        if isinstance(node, ast.keyword) and node.arg in _PROSE_KEYWORDS:
            skip.update(id(sub) for sub in ast.walk(node.value))
    return skip


def _identifier(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.arg):
        return node.arg
    if isinstance(node, ast.alias):
        return f"{node.name} {node.asname or ''}"
    if isinstance(node, ast.ImportFrom):
        return node.module
    if isinstance(node, ast.keyword):
        return node.arg
    return None


def _snake(identifier: str) -> str:
    """``AlfworldBackend`` / ``TWXBackend`` -> ``alfworld_backend`` / ``twx_backend``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", identifier).lower()


def env_name_uses(source: str) -> list[tuple[int, str]]:
    """(line, text) of every code string or identifier naming an environment or one of its games.

    Identifiers match in any case (``AlfworldBackend``); strings match the lowercase names code uses
    (``"alfworld"``, ``"steca_data.envs.alfworld.cli"``), not proper nouns in messages (``ALFWorld``).
    """
    names = "|".join(sorted(ENV_NAMES | set(registry.plugin_names())))
    pattern = re.compile(rf"(?<![a-z0-9])({names})(?![a-z0-9])")
    tree = ast.parse(source)
    skip = _skipped_strings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = None if id(node) in skip else node.value
        else:
            text = _identifier(node)
            text = _snake(text) if text else None
        if text and pattern.search(text):
            found.append((getattr(node, "lineno", 0), text))
    return found


def test_the_name_scan_sees_code_not_prose():
    code = (
        '"""Docstring naming alfworld."""\n'
        "from steca_data.envs.alfworld.cli import alfworld_app\n"
        'x = Field(1, description="e.g. twc")\n'
        'if spec.name == "textworld_express":\n'
        "    TWXBackend()\n"
        'msg = f"not an ALFWorld path"  # a comment on coin\n'
        'games = ("coincidence", "cookingworld")\n'
    )
    assert sorted(line for line, _ in env_name_uses(code)) == [2, 2, 4, 5, 7]


def test_env_names_appear_only_in_their_folders():
    package = REPO / "steca_data"
    offenders = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] == "envs" and (len(rel.parts) > 2 or rel.name == "registry.py"):
            continue  # an environment's own folder, and the registry's one line per environment
        offenders += [f"steca_data/{rel}:{line}: {text!r}" for line, text in env_name_uses(path.read_text())]
    assert not offenders, "environment names outside steca_data/envs/<env>/:\n" + "\n".join(offenders)
