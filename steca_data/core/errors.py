"""Error types shared across layers.

``RecipeError`` lives here, below the recipe package, because environment plugins raise it from their
load-time checks (``EnvPlugin.prepare``) and plugins must not import the recipe layer above them.
"""

from __future__ import annotations


class RecipeError(Exception):
    """A recipe that cannot be used; ``lines`` holds one readable message per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


class EngineStartError(RuntimeError):
    """An inference engine that did not start; the message is the one line to show (cause and what to do)."""
