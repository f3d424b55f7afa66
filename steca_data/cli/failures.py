"""A runtime failure as one line a user can act on: the real cause, and what to do (exit 1).

The exception's own text is kept (shortened, on one line); known causes (a locked or damaged cache, a
full disk, a read-only folder, too many failed units, a recipe problem found late) get a sentence saying
what to do. Anything else names its type and points at ``--debug`` for the traceback.
"""

from __future__ import annotations

import errno

from steca_data.cache.errors import CacheError, explain
from steca_data.core.damage import DamagedFile, library_problem
from steca_data.core.errors import EngineStartError, RecipeError
from steca_data.core.failures import BuildFailed, describe
from steca_data.core.outputs import OutputPathError

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


def _input_error(exc: BaseException) -> tuple[str, int] | None:
    """The user's input, found late (an output path, a Hub repo id): exit 2; a damaged input file: exit 1."""
    if isinstance(exc, OutputPathError):
        return " ".join(str(exc).split()), 2
    if isinstance(exc, DamagedFile):
        return " ".join(str(exc).split()), 1
    if type(exc).__name__ == "HFValidationError":  # a model path that is neither a folder nor a Hub id
        first = " ".join(str(exc).split(".")[0].split())
        return f"not a model folder or a Hub repo id ({first}); pass an existing model directory", 2
    return None


def _memory_error(exc: BaseException) -> bool:
    """Out of memory, really: not a damaged file that made a reader ask for an impossible size."""
    return isinstance(exc, MemoryError) and library_problem(exc) is None and not _while_reading_weights(exc)


def _while_reading_weights(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if any(part in name for part in ("safetensors", "weight_utils", "model_loader", "serialization.py")):
            return True
        tb = tb.tb_next
    return False


def explain_failure(exc: BaseException) -> tuple[str, int]:
    """(one line, exit code) for any exception that reached the command line."""
    if isinstance(exc, RecipeError):
        return (exc.lines[0] if exc.lines else str(exc)), 2
    if found := _input_error(exc):
        return found
    if isinstance(exc, BuildFailed | CacheError | EngineStartError):
        return " ".join(str(exc).split()), 1
    if isinstance(exc, MemoryError) and not _memory_error(exc):
        what = library_problem(exc) or "a model's weights could not be read"
        return f"{what}: the file is damaged or not a weights file (a damaged header can claim an impossible " \
               "size); check or rebuild the model folder you passed", 1  # fmt: skip
    if isinstance(exc, MemoryError):
        return "out of memory: lower policy.batch_size, sft.batch_tokens or env.workers and run again", 1
    if isinstance(exc, OSError) and (message := _os_error(exc)):
        return message, 1
    if message := _duckdb_error(exc):
        return message, 1
    for cause in (exc.__cause__, exc.__context__):  # e.g. a library wrapping a full disk
        if isinstance(cause, OSError) and (message := _os_error(cause)):
            return message, 1
    if problem := library_problem(exc):  # a file-format failure no wrapper named: what kind of file, damaged
        return f"{problem}: a file the command read is damaged or of another kind; check the paths you passed " \
               "(--debug shows which file)", 1  # fmt: skip
    return f"{describe(exc, 400)} (run with --debug for the traceback)", 1
