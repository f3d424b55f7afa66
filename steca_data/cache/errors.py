"""What a DuckDB failure on the build cache means for the user, in one line, with what to do about it.

DuckDB reports a second build on the same file, a truncated file, a full disk or a read-only folder as
``IOException``s with long texts (and a failed COMMIT is often followed by "cannot rollback - no
transaction is active", which hides the cause). ``explain`` turns the ones a user can act on into a
``CacheError`` line; anything else keeps DuckDB's own message.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path


class CacheError(RuntimeError):
    """The build cache cannot be used; the message names the file, the cause and what to do."""


_CORRUPT = (
    "not a valid DuckDB database file",
    "Corrupt database file",
    "Could not read enough bytes",
    "checksum",
    "Serialization Error",
)


def explain(exc: BaseException, path: Path | str) -> CacheError | None:
    """A ``CacheError`` for the failures a user can fix (lock, corruption, disk, permissions), else None."""
    text = str(exc)
    if "Could not set lock on file" in text or "Conflicting lock" in text:
        pid = re.search(r"PID (\d+)", text)
        holder = f"process {pid[1]}" if pid else "another process"
        return CacheError(
            f"{path} is in use by {holder} (a build still running?): wait for it to finish or stop it, then retry"
        )
    if any(marker in text for marker in _CORRUPT):
        return CacheError(
            f"{path} is damaged ({text.splitlines()[0][:160]}); move it aside and build again to recompute it"
        )
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC or "No space left on device" in text:
        return CacheError(f"disk full while writing {path}: free some space and build again (stored units are kept)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in text or "Read-only file" in text:
        return CacheError(
            f"cannot write {path} (permission denied or read-only): choose a writable output.dir or output.cache"
        )
    return None
