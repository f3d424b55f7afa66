"""Every table and view a build's cache can hold: the cache's own, then each stage's, in build order.

What ``steca-data sql`` users read about (the README's table of tables is generated from here, and a test
keeps the two in sync). The DDL itself lives beside whoever fills the table.
"""

from __future__ import annotations

from steca_data.cache.store import CORE_TABLES, Table
from steca_data.stages.agent import BaseAgentStage
from steca_data.stages.experts import ExpertStage, GoldStage
from steca_data.stages.games import GamesStage
from steca_data.stages.imports import ImportStage
from steca_data.stages.labels import PlanLabelStage
from steca_data.stages.proposals import ProposalStage
from steca_data.stages.reflections import ReflectionStage
from steca_data.stages.rollouts import RolloutStage

BUILD_STAGES = (GamesStage, ImportStage, GoldStage, ExpertStage, BaseAgentStage, ProposalStage, RolloutStage,
                PlanLabelStage, ReflectionStage)  # fmt: skip


def stage_tables(stages) -> list[Table]:
    """The tables (and views) of ``stages`` (instances or classes), each once, in stage order."""
    tables: dict[str, Table] = {}
    for stage in stages:
        for table in stage.tables:
            tables.setdefault(table.name, table)
    return list(tables.values())


def build_tables(stages=()) -> list[Table]:
    """What a build's cache is created with: every build stage's tables whichever stages this recipe runs (so
    every documented table exists in every build, empty where its stage did not run, and readers and SQL
    users never meet a missing one), then those of any other ``stages`` (e.g. an experiment's)."""
    return stage_tables([*BUILD_STAGES, *stages])


def all_tables() -> list[Table]:
    """The cache's tables, then every build stage's (views after the tables they read)."""
    tables = [*CORE_TABLES, *stage_tables(BUILD_STAGES)]
    return [t for t in tables if not t.view] + [t for t in tables if t.view]


def tables_markdown() -> str:
    """The README's table of tables and views."""
    lines = ["| table or view | what it holds |", "|---|---|"]
    lines += [f"| `{t.name}`{' (view)' if t.view else ''} | {t.doc} |" for t in all_tables()]
    return "\n".join(lines)
