"""The build cache: one DuckDB file, one row per expensive unit, keyed by a content hash.

A unit's key hashes everything that determines it (its inputs and the recipe fields it reads), so:
a rebuild finds every unit it would compute already present; a killed build resumes where it stopped
(every unit is committed the moment it exists); changing a field recomputes only the units that read it.

The file is plain DuckDB: ``steca-data sql`` or any DuckDB client can query the tables and views
documented in ``TABLES`` (also rendered in the README).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pyarrow as pa

from steca_data.cache.errors import explain
from steca_data.core.schemas import Task, Trajectory

CACHE_FORMAT = "1"


# name -> (DDL, one-line documentation)
TABLES: dict[str, tuple[str, str]] = {
    "meta": (
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        "Build metadata: cache format, last recipe fingerprint, environment version, the machine (CPU model and "
        "instruction sets) it last ran on.",
    ),
    "tasks": (
        """CREATE TABLE IF NOT EXISTS tasks (
            task_id VARCHAR PRIMARY KEY, split VARCHAR, env VARCHAR, game VARCHAR, params VARCHAR,
            seed BIGINT, fold VARCHAR, unseen BOOLEAN)""",
        "Every task the recipe names, with its split and whether it is unseen.",
    ),
    "gold_paths": (
        """CREATE TABLE IF NOT EXISTS gold_paths (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, num_steps INTEGER, success BOOLEAN, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Gold action sequences replayed in the environment (observations, scores), before thoughts.",
    ),
    "trajectories": (
        """CREATE TABLE IF NOT EXISTS trajectories (
            key VARCHAR PRIMARY KEY, trajectory_id VARCHAR, source VARCHAR, task_id VARCHAR,
            split VARCHAR, env_name VARCHAR, env_version VARCHAR, num_steps INTEGER,
            outcome_reward DOUBLE, success BOOLEAN, policy_id VARCHAR, prompt_version VARCHAR,
            constrained_actions BOOLEAN, thought_source VARCHAR, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Whole episodes: expert, imported, explored, eval. `data` is the full Trajectory JSON.",
    ),
    "steps": (
        """CREATE TABLE IF NOT EXISTS steps (
            trajectory_key VARCHAR, step_index INTEGER, thought VARCHAR, action VARCHAR,
            observation VARCHAR, reward DOUBLE, done BOOLEAN, valid BOOLEAN,
            PRIMARY KEY (trajectory_key, step_index))""",
        "One row per step of every trajectory (join on trajectories.key).",
    ),
    "failures": (
        """CREATE TABLE IF NOT EXISTS failures (
            key VARCHAR PRIMARY KEY, stage VARCHAR, task_id VARCHAR, error VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Units that could not be computed (environment crash, unsolvable task, LLM errors), per stage.",
    ),
    "artifacts": (
        """CREATE TABLE IF NOT EXISTS artifacts (
            key VARCHAR PRIMARY KEY, kind VARCHAR, path VARCHAR, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Units that are files (a warm-up model, a trained method): where they are and what made them.",
    ),
    "scored_prefixes": (
        """CREATE TABLE IF NOT EXISTS scored_prefixes (
            key VARCHAR PRIMARY KEY, prefix_key VARCHAR, task_id VARCHAR, kind VARCHAR, step INTEGER,
            prefix_len INTEGER, action VARCHAR, thought VARCHAR, policy_id VARCHAR, samples INTEGER)""",
        "Each (prefix, policy, sampling) whose Monte Carlo value is estimated; kind expert (step = prefix "
        "length k, 0 = start state) or proposal (step = position t of the agent's action).",
    ),
    "proposals": (
        """CREATE TABLE IF NOT EXISTS proposals (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, expert_action VARCHAR, thought VARCHAR,
            action VARCHAR, observation VARCHAR, valid BOOLEAN, unparsable BOOLEAN, policy_id VARCHAR,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "The base agent's own action at each expert position t, from the expert prefix e_{1:t-1}.",
    ),
    "rollouts": (
        """CREATE TABLE IF NOT EXISTS rollouts (
            key VARCHAR PRIMARY KEY, score_key VARCHAR, task_id VARCHAR, kind VARCHAR, step INTEGER,
            sample_index INTEGER, seed BIGINT, policy_id VARCHAR, prefix_len INTEGER, num_steps INTEGER,
            outcome_reward DOUBLE, success BOOLEAN, actions JSON, data JSON,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "One Monte Carlo continuation (stored the moment it ends); `actions` are those after the prefix.",
    ),
    "reflections": (
        """CREATE TABLE IF NOT EXISTS reflections (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, backend VARCHAR, model VARCHAR,
            prompt VARCHAR, raw_response VARCHAR, thought VARCHAR, status VARCHAR, attempts INTEGER,
            created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Reflective thoughts for first deviations, with prompt and raw response; status ok or failed.",
    ),
    "deviations": (
        """CREATE TABLE IF NOT EXISTS deviations (
            task_id VARCHAR, step INTEGER, expert_action VARCHAR, proposed_thought VARCHAR,
            proposed_action VARCHAR, reward_proposal DOUBLE, reward_expert_prev DOUBLE, delta DOUBLE,
            deviated BOOLEAN, first BOOLEAN, policy_id VARCHAR, expert_score_key VARCHAR,
            proposal_score_key VARCHAR, PRIMARY KEY (task_id, step))""",
        "Verdicts of the last build (derived, cheap): one row per judged proposal under the recipe's delta, with "
        "the score keys of the two values compared (V[t-1] and the proposal's; join `rollouts.score_key`).",
    ),
    "plan_labels": (
        """CREATE TABLE IF NOT EXISTS plan_labels (
            key VARCHAR PRIMARY KEY, task_id VARCHAR, step INTEGER, expert_action VARCHAR, action VARCHAR,
            h_before INTEGER, h_after INTEGER, label VARCHAR, h_after_expert INTEGER, expert_label VARCHAR,
            planner VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp)""",
        "Ground truth per proposal (`labels.planner`): the planner's remaining plan length h before the "
        "position t and after the proposed action and after the expert's, each labelled progress, detour or "
        "dead_end (h NULL: no plan).",
    ),
    "import_errors": (
        """CREATE TABLE IF NOT EXISTS import_errors (
            source VARCHAR, record_index INTEGER, record_id VARCHAR, error VARCHAR,
            PRIMARY KEY (source, record_index))""",
        "Malformed records of imported expert files, by index; they are skipped, never dropped silently.",
    ),
}


# columns added to a table after caches with it existed (derived tables only: their rows are rewritten)
ADDED_COLUMNS = [("deviations", "expert_score_key VARCHAR"), ("deviations", "proposal_score_key VARCHAR")]


# name -> (SQL, one-line documentation); created after the tables
VIEWS: dict[str, tuple[str, str]] = {
    "step_rewards": (
        """CREATE OR REPLACE VIEW step_rewards AS
           SELECT p.task_id, p.kind, p.step, p.prefix_len, p.action, p.policy_id, count(r.key) AS n,
                  coalesce(sum(r.success::INTEGER), 0) AS successes, avg(r.outcome_reward) AS reward,
                  p.key AS score_key
           FROM scored_prefixes p LEFT JOIN rollouts r ON r.score_key = p.key
           GROUP BY ALL""",
        "Monte Carlo step reward per scored prefix: n rollouts, successes, mean outcome.",
    ),
    "expert_step_rewards": (
        """CREATE OR REPLACE VIEW expert_step_rewards AS
           SELECT s.*, t.num_steps - s.step AS steps_remaining
           FROM step_rewards s
           JOIN (SELECT task_id, max(step) AS num_steps FROM scored_prefixes WHERE kind = 'expert'
                 GROUP BY task_id) t USING (task_id)
           WHERE s.kind = 'expert'""",
        "Step rewards of expert prefixes with steps remaining to completion (the paper's Figure 3).",
    ),
    "labelled_deviations": (
        """CREATE OR REPLACE VIEW labelled_deviations AS
           SELECT d.*, l.h_before, l.h_after, l.label, l.h_after_expert, l.expert_label
           FROM deviations d JOIN plan_labels l
             ON l.task_id = d.task_id AND l.step = d.step AND l.action = d.proposed_action
            AND l.expert_action = d.expert_action""",
        "The last build's verdicts with their ground-truth labels (builds with `labels.planner: true`).",
    ),
    "calibrations": (
        """CREATE OR REPLACE VIEW calibrations AS
           SELECT d.*, r.thought AS reflection, r.status AS reflection_status, r.backend AS reflection_backend
           FROM deviations d LEFT JOIN reflections r ON r.task_id = d.task_id AND r.step = d.step
           WHERE d.first""",
        "First deviations with their reflections: what Dc is built from.",
    ),
}


def tables_markdown() -> str:
    """The README's table of tables and views (a test keeps the README in sync with this)."""
    lines = ["| table or view | what it holds |", "|---|---|"]
    lines += [f"| `{name}` | {doc} |" for name, (_, doc) in TABLES.items()]
    lines += [f"| `{name}` (view) | {doc} |" for name, (_, doc) in VIEWS.items()]
    return "\n".join(lines)


class Cache:
    """A DuckDB build cache. Writes happen on the caller's thread; one open handle per process.

    Units are buffered and committed together at most ``flush_every_s`` after they exist (default a
    quarter second): per-row commits cost ~10 ms each in DuckDB, which would dominate cheap units, while a
    crash loses at most that quarter second of work. ``flush_every_s=0`` commits every unit at once.
    """

    def __init__(self, path: str | Path, read_only: bool = False, flush_every_s: float = 0.25):
        self.path = Path(path)
        self.flush_every_s = flush_every_s
        self._pending: dict[str, list[dict]] = {}
        self._last_flush = time.monotonic()
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except (duckdb.Error, OSError) as exc:
            raise explain(exc, self.path) or exc from None
        if not read_only:
            try:
                for ddl, _ in TABLES.values():
                    self.con.execute(ddl)
                for table, column in ADDED_COLUMNS:  # caches written before the column existed
                    self.con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}")
                for ddl, _ in VIEWS.values():
                    self.con.execute(ddl)
                self.set_meta("cache_format", CACHE_FORMAT)
            except duckdb.Error as exc:
                self.con.close()
                raise explain(exc, self.path) or exc from None

    @classmethod
    def for_reading(cls, path: str | Path) -> Cache:
        """A read-only handle on ``path``, or an empty in-memory cache when there is none yet: what ``plan``
        and readers use, so looking never creates or locks a file for writing."""
        if Path(path).is_file():
            return cls(path, read_only=True)
        return cls(":memory:")

    # ------------------------------------------------------------------------------------------ writing
    def _add(self, table: str, rows: list[dict]) -> None:
        if rows:  # an empty Arrow table has no columns to insert
            self._pending.setdefault(table, []).extend(rows)

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    def _insert(self, table: str, rows: list[dict], verb: str) -> None:
        """Bulk insert through Arrow (DuckDB's executemany runs one statement per row)."""
        data = pa.Table.from_pylist(rows)
        cols = ", ".join(data.column_names)
        self.con.register("_bulk_rows", data)
        try:
            self.con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _bulk_rows")
        finally:
            self.con.unregister("_bulk_rows")

    def flush(self) -> None:
        """Commit every pending row in one transaction (all tables or none)."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        with self._transaction():
            for table, rows in pending.items():
                self._insert(table, rows, "INSERT OR IGNORE")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction; on failure the *cause* is raised (DuckDB may have rolled back already, and its
        "cannot rollback - no transaction is active" would hide a full disk), explained when it can be."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException as exc:
            with suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error | OSError) and (explained := explain(exc, self.path)) is not None:
                raise explained from exc
            raise

    # -------------------------------------------------------------------------------------------- meta
    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def get_meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------------------------------ generic
    def existing(self, table: str, keys: Iterable[str]) -> set[str]:
        self.flush()
        keys = list(keys)
        if not keys:
            return set()
        rows = self.con.execute(f"SELECT key FROM {table} WHERE key IN (SELECT unnest(?))", [keys]).fetchall()
        return {r[0] for r in rows}

    def count(self, table: str) -> int:
        self.flush()
        return self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def sql(self, query: str, params: list | None = None):
        self.flush()
        return self.con.execute(query, params or [])

    # -------------------------------------------------------------------------------------------- tasks
    def put_tasks(self, tasks: list[Task]) -> None:
        self.flush()
        if not tasks:
            return
        data = pa.Table.from_pylist([t.model_dump() for t in tasks])
        self.con.register("_tasks", data)
        self.con.execute(
            "INSERT OR REPLACE INTO tasks SELECT task_id, split, env, game, params, seed, fold, unseen FROM _tasks"
        )
        self.con.unregister("_tasks")

    # --------------------------------------------------------------------------------------- gold paths
    def put_gold(self, key: str, trajectory: Trajectory) -> None:
        self._add(
            "gold_paths",
            [
                {
                    "key": key,
                    "task_id": trajectory.task.task_id,
                    "num_steps": len(trajectory.steps),
                    "success": trajectory.success,
                    "data": trajectory.model_dump_json(),
                }
            ],
        )
        self._maybe_flush()

    def get_gold(self, keys: list[str]) -> dict[str, Trajectory]:
        rows = self.sql("SELECT key, data FROM gold_paths WHERE key IN (SELECT unnest(?))", [keys]).fetchall()
        return {k: Trajectory.model_validate_json(d) for k, d in rows}

    # ------------------------------------------------------------------------------------- trajectories
    def put_trajectory(self, key: str, t: Trajectory) -> None:
        """Store a trajectory and its steps (committed together: both or neither survive a crash)."""
        self._add(
            "trajectories",
            [
                {
                    "key": key,
                    "trajectory_id": t.trajectory_id,
                    "source": t.source,
                    "task_id": t.task.task_id,
                    "split": t.task.split,
                    "env_name": t.env_name,
                    "env_version": t.env_version,
                    "num_steps": len(t.steps),
                    "outcome_reward": t.outcome_reward,
                    "success": t.success,
                    "policy_id": t.policy_id,
                    "prompt_version": t.prompt_version,
                    "constrained_actions": t.constrained_actions,
                    "thought_source": t.thought_source,
                    "data": t.model_dump_json(),
                }
            ],
        )
        self._add(
            "steps",
            [
                {
                    "trajectory_key": key,
                    "step_index": i,
                    "thought": s.thought,
                    "action": s.action,
                    "observation": s.observation,
                    "reward": s.reward,
                    "done": s.done,
                    "valid": s.valid,
                }
                for i, s in enumerate(t.steps)
            ],
        )
        self._maybe_flush()

    def get_trajectories(self, keys: list[str]) -> dict[str, Trajectory]:
        rows = self.sql("SELECT key, data FROM trajectories WHERE key IN (SELECT unnest(?))", [keys]).fetchall()
        return {k: Trajectory.model_validate_json(d) for k, d in rows}

    # ---------------------------------------------------------------------------------------- failures
    def put_failure(self, stage: str, key: str, task_id: str, error: str) -> None:
        self.flush()
        self.con.execute(
            "INSERT OR REPLACE INTO failures (key, stage, task_id, error) VALUES (?, ?, ?, ?)",
            [key, stage, task_id, error[:2000]],
        )

    def clear_failure(self, key: str) -> None:
        self.clear_failures([key])

    def clear_failures(self, keys: list[str]) -> None:
        """Forget the recorded failures of units that have now been stored."""
        if keys:
            self.flush()
            self.con.execute("DELETE FROM failures WHERE key IN (SELECT unnest(?))", [list(keys)])

    # --------------------------------------------------------------------------------------- artifacts
    def put_artifact(self, key: str, kind: str, path: str | Path, data: dict) -> None:
        """Record a file-valued unit. A path inside the cache's folder (a build directory) is stored relative to
        it, so the build can be moved or read from any working directory; ``data["path"]`` follows suit."""
        self.flush()
        stored = self._stored_path(path)
        if data.get("path") == str(path):
            data = {**data, "path": stored}
        self.con.execute(
            "INSERT OR REPLACE INTO artifacts (key, kind, path, data) VALUES (?, ?, ?, ?)",
            [key, kind, stored, json.dumps(data)],
        )

    def get_artifact(self, key: str) -> dict | None:
        """The record of a file-valued unit, or None when absent or its files were deleted since; its
        ``path`` (when it names the unit's files) resolved to where they are now.

        (DuckDB 2.0: a ``fetchone()`` leaves the result open and the next Arrow ``register`` fails.)"""
        rows = self.sql("SELECT path, data FROM artifacts WHERE key = ?", [key]).fetchall()  # fetchall: see below
        if not rows:
            return None
        path = self.artifact_path(rows[0][0])
        if path is None:
            return None
        data = json.loads(rows[0][1])
        if data.get("path") == rows[0][0]:
            data["path"] = str(path)
        return data

    @property
    def _home(self) -> Path | None:
        """The folder stored artifact paths are relative to (None for an in-memory cache)."""
        return None if str(self.path) == ":memory:" else self.path.resolve().parent

    def _stored_path(self, path: str | Path) -> str:
        home, absolute = self._home, Path(path).resolve()
        if home is not None and absolute.is_relative_to(home):
            return absolute.relative_to(home).as_posix()
        return str(absolute)

    def artifact_path(self, stored: str) -> Path | None:
        """Where a stored artifact path points now: relative to the cache's folder, else (caches written before
        paths were stored relative) as written, from the working directory; None when nothing is there."""
        path = Path(stored)
        if path.is_absolute():
            return path if path.exists() else None
        return next((base / path for base in (self._home, Path.cwd()) if base and (base / path).exists()), None)

    def put_import_errors(self, source: str, errors: list[tuple[int, str | None, str]]) -> None:
        self.flush()
        self.con.execute("DELETE FROM import_errors WHERE source = ?", [source])
        if errors:
            self.con.executemany(
                "INSERT INTO import_errors VALUES (?, ?, ?, ?)", [[source, i, rid, err] for i, rid, err in errors]
            )

    def put_rows(self, table: str, rows: list[dict]) -> None:
        """Buffered insert of plain rows (committed with the next flush)."""
        self._add(table, rows)
        self._maybe_flush()

    def replace_rows(self, table: str, rows: list[dict], where: str = "TRUE", params: list | None = None) -> None:
        """Delete what ``where`` selects and insert ``rows``, in one transaction (derived tables)."""
        self.flush()
        with self._transaction():
            self.con.execute(f"DELETE FROM {table} WHERE {where}", params or [])
            if rows:
                self._insert(table, rows, "INSERT")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.con.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
