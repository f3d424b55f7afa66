"""Keep broken torch extension wheels from breaking imports.

vLLM's CPU build depends on torchvision/torchaudio/torchcodec, and pip installs their PyPI wheels, which
cannot load beside the local CPU build of torch ("operator torchvision::nms does not exist"). transformers
and vLLM import them opportunistically, so one broken wheel breaks ``from transformers import LlamaConfig``.
Text agents never need them: each installed one is probed once in a subprocess (the verdict is cached per
interpreter and versions) and, if it cannot load, hidden from this process, so importing it raises
ImportError and libraries treat it as absent.

Hiding them here is not enough: vLLM inspects a model's architecture in a fresh interpreter
(``python -m vllm.model_executor.models.registry``), and a served model spawns engine processes; on a machine
whose vLLM cache is empty that fresh interpreter imported the broken wheel and the engine refused the model.
So the same hiding is handed to every interpreter this process starts: ``PYTHONPATH`` gains
``steca_data/startup`` (its ``sitecustomize`` hides ``STECA_DATA_HIDDEN_MODULES`` and then runs any
``sitecustomize`` it shadows). Only children of a steca-data process see it; the user's environment and
site-packages are left as the install made them (``steca-data doctor`` says how to remove the wheels).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

EXTENSIONS = ("torchvision", "torchaudio", "torchcodec")
HIDDEN_VAR = "STECA_DATA_HIDDEN_MODULES"
STARTUP_DIR = Path(__file__).resolve().parent / "startup"


def _installed() -> dict[str, str]:
    found = {}
    for name in ("torch", *EXTENSIONS):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "steca-data" / "torch-extensions.json"


def probe_imports(names: list[str]) -> list[str]:
    """The names whose import fails in a fresh interpreter (probed in parallel)."""
    env = {k: v for k, v in os.environ.items() if k != HIDDEN_VAR}  # the wheel itself, not our hiding of it
    procs = {n: subprocess.Popen([sys.executable, "-c", f"import {n}"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env) for n in names}  # fmt: skip
    return [n for n, p in procs.items() if p.wait(timeout=300) != 0]


def broken_torch_extensions() -> list[str]:
    versions = _installed()
    names = [n for n in EXTENSIONS if n in versions]
    if "torch" not in versions or not names:
        return []
    key = json.dumps([sys.prefix, versions], sort_keys=True)  # one verdict per environment and versions
    path = _cache_file()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = probe_imports(names)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known))
        except OSError:
            pass  # no cache directory: probe again next time
    return list(known[key])


def hide_broken_torch_extensions() -> None:
    """Hide broken extensions: ``import`` raises ImportError and ``find_spec`` says absent. Import steca_data
    before datasets/transformers; flags those libraries computed earlier are corrected where known."""
    names = broken_torch_extensions()
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    config = sys.modules.get("datasets.config")
    if config is not None:
        for name in names:
            setattr(config, f"{name.upper()}_AVAILABLE", False)
    if names:
        hide_in_children(names)


def hide_in_children(names: list[str]) -> None:
    """Every interpreter started from now on by this process (and by its children) hides ``names`` too."""
    hidden = set(filter(None, os.environ.get(HIDDEN_VAR, "").split(",")))
    os.environ[HIDDEN_VAR] = ",".join(sorted(hidden | set(names)))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(STARTUP_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(STARTUP_DIR), *paths])
