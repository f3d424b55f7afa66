"""A runtime failure as one line a user can act on: the real cause, and what to do (exit 1).

The exception's own text is kept (shortened, on one line); known causes (a locked or damaged cache, a
full disk, a read-only folder, too many failed units, a recipe problem found late) get a sentence saying
what to do. Anything else names its type and points at ``--debug`` for the traceback.
"""

from __future__ import annotations

import errno

from steca_data.cache.errors import CacheError, explain
from steca_data.core.errors import EngineStartError, RecipeError
from steca_data.core.failures import BuildFailed, describe

_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def _os_error(exc: OSError) -> str | None:
    where = f" writing {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full{where}: free some space and run again (everything stored so far is kept)"
    if exc.errno in _PERMISSION:
        target = f" {exc.filename}" if exc.filename else ""
        return f"cannot write{target}: {exc.strerror}; choose a writable output.dir (or fix its permissions)"
    return None


def _duckdb_error(exc: BaseException) -> str | None:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return None
    if not isinstance(exc, duckdb.Error):
        return None
    explained = explain(exc, "the build cache")
    return str(explained) if explained else None


def explain_failure(exc: BaseException) -> tuple[str, int]:
    """(one line, exit code) for any exception that reached the command line."""
    if isinstance(exc, RecipeError):
        return (exc.lines[0] if exc.lines else str(exc)), 2
    if isinstance(exc, BuildFailed | CacheError | EngineStartError):
        return " ".join(str(exc).split()), 1
    if isinstance(exc, MemoryError):
        return "out of memory: lower policy.batch_size, sft.batch_tokens or env.workers and run again", 1
    if isinstance(exc, OSError) and (message := _os_error(exc)):
        return message, 1
    if message := _duckdb_error(exc):
        return message, 1
    for cause in (exc.__cause__, exc.__context__):  # e.g. a library wrapping a full disk
        if isinstance(cause, OSError) and (message := _os_error(cause)):
            return message, 1
    return f"{describe(exc, 400)} (run with --debug for the traceback)", 1
