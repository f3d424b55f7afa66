"""A fresh machine: what the package hides in its own process reaches every interpreter it starts; engine
start failures and `steca-data doctor` say what is wrong in one line.

The broken-wheel cases use a real package that fails to import the way the PyPI torchvision wheel does beside
the local CPU torch ("operator torchvision::nms does not exist"), imported by real fresh interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steca_data import compat
from tests.conftest import run_cli, write_recipe

BROKEN = "steca_fake_torchvision"


@pytest.fixture
def broken_wheel(tmp_path) -> Path:
    """A folder holding a package whose import fails like the broken torchvision wheel."""
    root = tmp_path / "site"
    (root / BROKEN).mkdir(parents=True)
    (root / BROKEN / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    return root


def _child(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_interpreters_started_by_the_package_hide_what_it_hides(broken_wheel, tmp_path, monkeypatch):
    shadowed = tmp_path / "theirs"
    shadowed.mkdir()  # a sitecustomize of the user's own, which ours shadows and must still run
    (shadowed / "sitecustomize.py").write_text("import os\nos.environ['THEIR_SITECUSTOMIZE'] = 'ran'\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(broken_wheel), str(shadowed)]))
    monkeypatch.delenv(compat.HIDDEN_VAR, raising=False)
    compat.hide_in_children([BROKEN])
    code = (
        "import importlib.util, os\n"
        f"assert importlib.util.find_spec({BROKEN!r}) is None\n"
        "try:\n"
        f"    import {BROKEN}\n"
        "except ImportError:\n"
        "    print('hidden', os.environ.get('THEIR_SITECUSTOMIZE'))\n"
    )
    done = _child(code, dict(os.environ))
    assert done.stdout.split() == ["hidden", "ran"], done.stderr
    grandchild = _child(f"import subprocess, sys; subprocess.run([sys.executable, '-c', {code!r}])", dict(os.environ))
    assert grandchild.stdout.split() == ["hidden", "ran"], grandchild.stderr
    without = {k: v for k, v in os.environ.items() if k != compat.HIDDEN_VAR}
    assert "operator torchvision::nms" in _child(f"import {BROKEN}", without).stderr, "the wheel itself is broken"


def test_real_broken_extensions_stay_hidden_in_fresh_interpreters():
    """Where this machine has a broken torch extension wheel (vLLM's CPU build pulls them), a fresh
    interpreter started from here imports transformers' Llama and treats the wheel as absent."""
    broken = compat.broken_torch_extensions()
    if not broken:
        pytest.skip("no broken torch extension wheel installed here")
    code = (
        f"import importlib.util; from transformers import LlamaConfig; print(importlib.util.find_spec({broken[0]!r}))"
    )
    done = _child(code, dict(os.environ))
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr


def test_an_engine_that_cannot_import_its_model_says_why_in_one_line(broken_wheel, monkeypatch):
    from steca_data.policies import engine_start

    monkeypatch.setenv("PYTHONPATH", str(broken_wheel))
    monkeypatch.setattr(engine_start, "_module_of", lambda arch: BROKEN)
    vllm_said = ValueError(
        "1 validation error for ModelConfig\n  Model architectures ['LlamaForCausalLM'] failed to be inspected"
    )
    message = str(engine_start.explain_engine_start(vllm_said, "models/sft", ["LlamaForCausalLM"]))
    assert "\n" not in message
    assert "torchvision is broken beside this torch build" in message
    assert "operator torchvision::nms does not exist" in message and "steca-data doctor" in message


def test_a_damaged_weights_file_is_named_not_called_out_of_memory(tmp_path):
    from safetensors.torch import load_file

    from steca_data.policies.engine_start import explain_engine_start

    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    try:
        load_file(tmp_path / "model.safetensors")
    except Exception as exc:  # noqa: BLE001 - the real library error, as vLLM's loader meets it
        damaged = RuntimeError("engine core initialisation failed")
        damaged.__cause__ = exc
    message = str(explain_engine_start(damaged, str(tmp_path), ["LlamaForCausalLM"]))
    assert "weights cannot be read" in message and str(tmp_path) in message
    assert "memory" not in message


def test_doctor_fails_a_recipe_whose_environment_needs_java_when_there_is_none(tmp_path):
    recipe = write_recipe(tmp_path)  # TextWorldExpress: a JAR on Java 17
    no_java = {"PATH": str(Path(sys.executable).parent)}
    done = run_cli("doctor", str(recipe), env=no_java)
    assert done.returncode == 1, done.stdout + done.stderr
    java = [line for line in done.stdout.splitlines() if "Java" in line and "TextWorldExpress" in line]
    assert java and java[0].startswith("fail*") and "no `java` on PATH" in java[0]
    assert "error:" in done.stderr and "Java" in done.stderr and "Traceback" not in done.stderr
    assert "openjdk" in done.stdout, "the line says how to fix it"


def test_doctor_passes_where_the_recipe_has_what_it_needs(tmp_path):
    done = run_cli("doctor", str(write_recipe(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("ok  *") and "Java" in line and "TextWorldExpress" in line for line in lines)
    assert any("CPU:" in line for line in lines) and lines[-1].startswith("* needed by")
