"""Environment backends behind one protocol (see ``base``)."""

from __future__ import annotations

from steca_data.envs.base import EnvBackend, EnvError, EnvSession, SessionPool, StepResult, replay

__all__ = ["EnvBackend", "EnvError", "EnvSession", "SessionPool", "StepResult", "make_backend", "replay"]


def make_backend(spec) -> EnvBackend:
    """Instantiate the backend a recipe's ``env`` section names (imports only that backend)."""
    if spec.name == "textworld_express":
        from steca_data.envs.textworld_express.backend import TWXBackend

        return TWXBackend(spec)
    if spec.name == "alfworld":
        from steca_data.envs.alfworld import AlfworldBackend  # type: ignore[import-not-found]

        return AlfworldBackend(spec)
    raise ValueError(f"unknown environment {spec.name!r}")
