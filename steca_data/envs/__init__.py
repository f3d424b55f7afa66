"""Environment backends behind one protocol (see ``base``)."""

from __future__ import annotations

from .base import EnvBackend, EnvError, EnvSession, SessionPool, StepResult, replay

__all__ = ["EnvBackend", "EnvError", "EnvSession", "SessionPool", "StepResult", "make_backend", "replay"]


def make_backend(spec) -> EnvBackend:
    """Instantiate the backend a recipe's ``env`` section names (imports only that backend)."""
    if spec.name == "textworld_express":
        from .textworld_express import TWXBackend

        return TWXBackend(spec)
    if spec.name == "alfworld":
        from .alfworld import AlfworldBackend  # type: ignore[import-not-found]

        return AlfworldBackend(spec)
    raise ValueError(f"unknown environment {spec.name!r}")
