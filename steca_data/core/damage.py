"""Input files a library could not read, as one line that names the file and what to do.

Loading a model, a saved dataset or a JSON file fails deep inside a library (safetensors, Arrow, the
tokenizers crate, ``json``) with a message that names neither the file nor the fix ("Invalid IPC stream",
"HeaderTooLarge", "Expecting value: line 1 column 1"). ``reading(path, what)`` wraps such a load: a
library's failure becomes ``DamagedFile`` naming ``path``. ``library_problem`` recognises the same
failures when no wrapper was there (the command line's last resort). Classes are recognised by module and
name, so this layer imports none of those libraries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from steca_data.core.failures import describe


class DamagedFile(RuntimeError):
    """An input file or folder that exists but cannot be read as what it should be (exit 1)."""


# (module prefix or class name, what kind of file that library reads)
_READERS = (
    ("safetensors", "a safetensors weights file"),
    ("SafetensorError", "a safetensors weights file"),
    ("pyarrow", "an Arrow / parquet file"),
    ("ArrowInvalid", "an Arrow / parquet file"),
    ("tokenizers", "a tokenizer file"),
    ("JSONDecodeError", "a JSON file"),
    ("UnpicklingError", "a PyTorch checkpoint file"),
)


def _reader(exc: BaseException) -> str | None:
    for cls in type(exc).__mro__:
        module, name = cls.__module__ or "", cls.__name__
        for key, kind in _READERS:
            if module.startswith(key) or name == key:
                return kind
    if isinstance(exc, json.JSONDecodeError):
        return "a JSON file"
    text = str(exc)
    if "Invalid IPC" in text or "Not an Arrow file" in text or "Parquet magic bytes" in text:
        return "an Arrow / parquet file"
    if "HeaderTooLarge" in text or "Error while deserializing header" in text or "invalid load key" in text:
        return "a weights file"
    return None


def library_problem(exc: BaseException) -> str | None:
    """'<kind> could not be read (<library's words>)' when ``exc`` (or its cause) is a file-format failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        kind = _reader(current)
        if kind:
            return f"{kind} could not be read ({describe(current, 160)})"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def reading(path: Path | str, what: str, todo: str) -> Iterator[None]:
    """Turn a library's failure to read ``path`` (``what``: 'the model', 'the dataset') into one line."""
    try:
        yield
    except DamagedFile:
        raise
    except MemoryError as exc:  # a damaged header can claim terabytes: never call that plainly "out of memory"
        raise DamagedFile(
            f"{path}: ran out of memory reading {what} (a damaged file can claim an impossible size); check "
            f"the file ({todo}) or free memory"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - only file-format failures are rewritten; the rest re-raised
        problem = library_problem(exc)
        if problem is None:
            raise
        raise DamagedFile(f"{path}: {what} is damaged or incomplete: {problem}; {todo}") from exc
