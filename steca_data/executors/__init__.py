"""Executors: where a stage's units run (one process, or Ray workers and engine replicas); see ``base``."""

from steca_data.executors.base import Executor, LoadedPolicy, PlayJob, PolicySource
from steca_data.executors.local import LocalExecutor

__all__ = ["Executor", "LoadedPolicy", "LocalExecutor", "PlayJob", "PolicySource"]
