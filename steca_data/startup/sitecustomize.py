"""Runs at the start of every interpreter that a steca-data process starts (vLLM's model inspection, an
engine-core process, a served model's workers), through ``PYTHONPATH`` set by ``steca_data.compat``.

It hides the torch extension wheels named in ``STECA_DATA_HIDDEN_MODULES`` (those that cannot load beside
this torch build), exactly as ``compat`` does in the parent, then runs the ``sitecustomize`` this one
shadows, if the interpreter has one. Nothing else: it must stay cheap and import nothing heavy.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _hide() -> None:
    for name in filter(None, os.environ.get("STECA_DATA_HIDDEN_MODULES", "").split(",")):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # import raises ImportError


def _chain() -> None:
    """Run the next ``sitecustomize`` on sys.path (the one this module shadows), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_hide()
_chain()
