"""THE list of training methods whose data has a shape of its own: the data side of each, one module per method.

``steca-train``'s method registry (``train/methods/``) holds how each method trains; this one holds what a
method reads from a build and how ``steca-data export`` writes it — its preference-pair kinds (``trl-dpo``'s
``kind`` column, ``sharegpt``'s pair files) or its own format — because the data package never imports the
trainer. A method here has the same name as there, and its training module reads its data through
``method_data``. Methods that train on the build's datasets as they are (rows of ``expert``, ``dc``, ``de``,
``ds``) need no entry. The exports iterate this registry; none of them names a method.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from .base import MethodData, PairKind

METHOD_DATA: dict[str, str] = {
    "steca-dpo": "steca_data.export.methods.steca_dpo:DATA",
    "ipr": "steca_data.export.methods.ipr:DATA",
    "eto": "steca_data.export.methods.eto:DATA",
    "step": "steca_data.export.methods.step:DATA",
}

__all__ = ["METHOD_DATA", "MethodData", "PairKind", "formats", "method_data", "pair_kinds"]


@cache
def method_data(name: str) -> MethodData:
    """The data side of method ``name`` (KeyError for a method without one)."""
    module, _, attr = METHOD_DATA[name].partition(":")
    data = getattr(import_module(module), attr)
    assert data.method == name, f"{METHOD_DATA[name]} declares {data.method!r}, not {name!r}"
    return data


def pair_kinds() -> list[PairKind]:
    """Every preference-pair kind a method contributes, in registry order (``trl-dpo``'s kinds, sharegpt's files)."""
    return [m.kind for m in map(method_data, METHOD_DATA) if m.kind is not None]


def formats() -> dict:
    """The export formats of their own that methods declare: name -> the function that assembles its bundle."""
    return {m.format[0]: m.format[1] for m in map(method_data, METHOD_DATA) if m.format is not None}
