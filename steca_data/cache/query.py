"""Ad-hoc SQL on a build cache that cannot change anything: read-only in effect, not only by convention.

A read-only DuckDB connection still runs ``COPY … TO 'file'``, ``ATTACH``, ``INSTALL``/``LOAD`` and
``SET``. Here the connection is opened with external access disabled (no file or network I/O besides the
cache itself) and its configuration locked (no statement can turn that back on), and only ``SELECT``-like
statements (``SELECT``, ``WITH``, ``FROM``, ``SHOW``, ``DESCRIBE``, ``SUMMARIZE``) and ``EXPLAIN`` pass.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from steca_data.cache.errors import explain

READ_ONLY_CONFIG = {
    "enable_external_access": False,  # no COPY TO, EXPORT, ATTACH, read_csv('/etc/…'), extension downloads
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,  # last: no SET / PRAGMA can undo the above
}
ALLOWED = ("SELECT", "EXPLAIN")


def statement_problem(query: str) -> str | None:
    """Why ``query`` may not run (empty, unparsable, or a statement that is not a read), else None."""
    if not query.strip():
        return 'empty query; e.g. "select source, count(*) from trajectories group by 1"'
    try:
        statements = duckdb.connect(":memory:").extract_statements(query)
    except duckdb.Error as exc:
        return " ".join(str(exc).split())
    if not statements:
        return "no statement in the query (only comments?)"
    for statement in statements:
        kind = statement.type.name
        if kind not in ALLOWED:
            return f"read-only: {kind} statements are not allowed (only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
    return None


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A connection to the cache at ``path`` that can read it and nothing else."""
    try:
        return duckdb.connect(str(path), read_only=True, config=dict(READ_ONLY_CONFIG))
    except duckdb.Error as exc:
        raise explain(exc, path) or exc from None
