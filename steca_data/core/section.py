"""The base of every recipe section: unknown fields are errors, and booleans are not numbers.

Pydantic's lax mode reads ``count: true`` as 1 and ``temperature: false`` as 0.0. A recipe that says
``true`` where a number belongs is a mistake, never a count, so every section rejects it up front (the
full strict mode would also refuse YAML's ``1e-3``, which YAML 1.1 reads as a string).
"""

from __future__ import annotations

import types
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

_NUMBERS = (int, float)


def _numeric(annotation: Any) -> tuple[bool, bool]:
    """(the field takes numbers and not booleans, its values are a list of such)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if bool in args:
            return False, False
        found = [_numeric(a) for a in args]
        return any(n for n, _ in found), any(seq for _, seq in found)
    if origin in (list, tuple, set, frozenset):
        args = get_args(annotation)
        return (bool(args) and _numeric(args[0])[0]), True
    return annotation in _NUMBERS, False


class Section(BaseModel):
    """A recipe section: extra fields are rejected, and so are booleans in numeric fields."""

    model_config = ConfigDict(extra="forbid")
    # Fields added after caches existed whose default reproduces the earlier behaviour: at the default they are
    # left out of the recipe's fingerprint, so upgrading steca-data does not move every build's fingerprint
    # (and with it every trained model's and evaluation's key). Set to a value, they count like any field.
    FINGERPRINT_OMITS_DEFAULT: ClassVar[frozenset[str]] = frozenset()

    def fingerprint_content(self, dumped: dict[str, Any]) -> dict[str, Any]:
        """``dumped`` (this section's ``model_dump(mode="json")``) without the omitted fields at their default."""
        fields = type(self).model_fields
        return {
            k: v
            for k, v in dumped.items()
            if not (k in self.FINGERPRINT_OMITS_DEFAULT and getattr(self, k) == fields[k].default)
        }

    @model_validator(mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            value = data.get(info.alias or name)
            numeric, sequence = _numeric(info.annotation)
            if not numeric:
                continue
            values = value if sequence and isinstance(value, list) else [value]
            for i, item in enumerate(values):
                if isinstance(item, bool):
                    where = f"{name}.{i}" if sequence and isinstance(value, list) else name
                    raise ValueError(f"{where}: must be a number, not a boolean (got {item})")
        return data
