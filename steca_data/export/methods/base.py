"""What the data side of a training method declares (``methods/__init__.py`` lists them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..build_dir import BuildDir
from ..bundle import Bundle
from ..pairs import Pair


@dataclass(frozen=True)
class PairKind:
    """One kind of preference pair a method contributes to the exports (a ``kind`` of ``trl-dpo``)."""

    name: str  # the ``kind`` column's value
    assemble: Callable[[BuildDir, Bundle], list[Pair]]  # the one place pairs of this kind are built
    card: str  # the ``trl-dpo`` card's line about it
    sharegpt_file: str | None = None  # the pair file of the method's own scripts in the ``sharegpt`` export
    sharegpt_card: str = ""  # the ``sharegpt`` card's line about that file


@dataclass(frozen=True)
class MethodData:
    """The data side of one method: the pair kinds it trains on, the kind it contributes, a format of its own."""

    method: str  # its name in ``steca-train``'s registry
    kind: PairKind | None = None  # the pair kind this method contributes (its own)
    trains_on: tuple[PairKind, ...] = field(default=())  # the pair kinds its trainer reads (its own and others')
    rows: Callable[[BuildDir], list[dict]] | None = None  # rows of its own (beside the build's datasets)
    format: tuple[str, Callable[[BuildDir], Bundle]] | None = None  # (name, assemble) of its export format

    @property
    def kinds(self) -> tuple[str, ...]:
        """The ``kind`` values of the pairs it trains on."""
        return tuple(k.name for k in self.trains_on)
