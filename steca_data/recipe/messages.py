"""One line per recipe problem: ``file:line: yaml.path: what is wrong``, or ``(from --set KEY=VALUE)``.

A value given with ``--set`` has no line in the file (the file's line, if the key is there too, holds the
value that was replaced), so such problems name the override instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError


@dataclass
class Origin:
    """Where each field of a recipe came from: a line of the file, or a ``--set`` override."""

    where: str
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)  # dotted key -> "key=value" as typed

    def override_for(self, dotted: str) -> str | None:
        """The ``--set`` item on the same branch as ``dotted`` (the most specific one), if any."""
        hits = [
            key
            for key in self.overrides
            if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + ".")
        ]
        return self.overrides[max(hits, key=len)] if hits else None

    def line_of(self, loc: tuple[str, ...]) -> int | None:
        return next((self.lines[loc[:k]] for k in range(len(loc), 0, -1) if loc[:k] in self.lines), None)

    def problem(self, dotted: str, message: str) -> str:
        """The one line for a problem at YAML path ``dotted``."""
        item = self.override_for(dotted) if dotted else None
        if item is not None:
            return f"{self.where}: {dotted}: {message} (from --set {item})"
        line = self.line_of(tuple(dotted.split("."))) if dotted else None
        prefix = f"{self.where}:{line}" if line else self.where
        return f"{prefix}: {dotted or '(top level)'}: {message}"


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


_TYPE_TAG = re.compile(
    r"^(int|float|str|bool|none|list|dict|set|tuple|literal|union|tagged-union|nullable|"
    r"function-(after|before|wrap|plain)|is-instance|lax-or-strict|json-or-python|chain|default)(\[.*\])?$"
)


def _is_type_tag(part: str) -> bool:
    """Pydantic adds the member type of a union to the location (``int``, ``list[str]``); it is no field."""
    return bool(_TYPE_TAG.match(part))


def format_validation(exc: ValidationError, origin: Origin) -> list[str]:
    """One line per location (a union's members failing alike give one line, not one per member)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"] if not _is_type_tag(str(p)))
        msg = _describe(err)
        # model-level validators report "sub.path: message"; fold the sub path into the location
        if err["type"] == "value_error" and ": " in msg and not msg.startswith(" "):
            head, rest = msg.split(": ", 1)
            if " " not in head:
                loc, msg = (*loc, *head.split(".")), rest
        dotted = ".".join(loc)
        out.setdefault(dotted, origin.problem(dotted, msg))
    return list(out.values())
