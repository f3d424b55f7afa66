"""Environment backends behind one protocol (see ``base``), each a plugin named in ``registry``."""

from __future__ import annotations

from steca_data.envs.base import EnvBackend, EnvError, EnvSession, SessionPool, StepResult, replay
from steca_data.envs.registry import make_backend

__all__ = ["EnvBackend", "EnvError", "EnvSession", "SessionPool", "StepResult", "make_backend", "replay"]
