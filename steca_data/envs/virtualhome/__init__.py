"""VirtualHome on the evolving-graph simulator that ``virtualhome-eval`` 0.1.1 ships (518 scene-1 tasks).

Importing this package loads no simulator and no data: the simulator modules load on the first reset, the
task programs and ``tasks.json`` on the first task listing.
"""

from __future__ import annotations

from steca_data.envs.virtualhome.actions import ACTION_TEMPLATES
from steca_data.envs.virtualhome.backend import VirtualHomeBackend, VirtualHomeSession, instruction_text, list_tasks
from steca_data.envs.virtualhome.data import virtualhome_version
from steca_data.envs.virtualhome.splits import FOLD_SIZES, FOLDS, check_disjoint, fold_sizes, fold_tasks
from steca_data.envs.virtualhome.thoughts import PROMPT_VERSION, template_thought

__all__ = [
    "ACTION_TEMPLATES",
    "FOLDS",
    "FOLD_SIZES",
    "PROMPT_VERSION",
    "VirtualHomeBackend",
    "VirtualHomeSession",
    "check_disjoint",
    "fold_sizes",
    "fold_tasks",
    "instruction_text",
    "list_tasks",
    "template_thought",
    "virtualhome_version",
]
