"""Reading an import file: what is wrong with the whole file, and what is wrong with one record, kept apart.

A *file-level* problem means nothing in the file can be imported: it is empty, not JSON (nor JSON Lines), a
JSON value that is not a list of records, or text in an encoding that cannot be decoded. It is raised as
``ImportFileError`` with one line, and ``check_import_file`` turns it into the recipe error the CLIs print
before any work (exit 2).

A *record-level* problem spoils one record only and never the others: a JSON Lines line that is not JSON,
a record nested too deeply for the parser, or text that is not valid Unicode (a byte that is not UTF-8,
e.g. a latin-1 ``é``, or a lone surrogate escape such as ``"\\ud800"``). Bytes are decoded with
``surrogateescape``, so a stray byte spoils only the record that holds it; ``text_problem`` names it.

Encodings: UTF-8 (with or without a byte-order mark), and UTF-16 / UTF-32 with a byte-order mark (or
detectably UTF-16/32, as ``json`` itself decides for bytes).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from steca_data.importers.chat_layouts import TURN_KEYS

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# a JSON string, or one structural character: enough to find the top-level items of a list
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


class ImportFileError(ValueError):
    """A problem with the whole file (nothing in it can be imported); the message is one line."""


@dataclass
class RawRecords:
    """The records of a file as parsed JSON values, with the records that could not even be parsed."""

    digest: str
    records: list[object]
    problems: dict[int, str] = field(default_factory=dict)  # index -> why record ``index`` is unreadable


def safe_text(text: str, limit: int = 300) -> str:
    """``text`` with anything UTF-8 cannot encode escaped, shortened: fit for a message or a table cell."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode, or None. Stray bytes arrive as ``surrogateescape`` code points."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        if 0xDC80 <= char <= 0xDCFF:
            return f"byte 0x{char - 0xDC00:02X} is not UTF-8 (a latin-1 or cp1252 file? re-save it as UTF-8)"
        return f"lone surrogate \\u{char:04x} (half of a UTF-16 pair; not a character)"


def decode(raw: bytes) -> str:
    """The file's text; undecodable UTF-8 bytes are kept as surrogates for ``text_problem`` to name."""
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is None and len(raw) >= 4 and b"\x00" in raw[:4]:
        encoding = json.detect_encoding(raw)  # UTF-16/32 without a byte-order mark, as json.loads decides
    if encoding is None or encoding.startswith("utf-8"):
        return raw.decode(encoding or "utf-8", "surrogateescape")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"not valid {encoding.upper()} text ({exc.reason} at byte {exc.start})") from None


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _top_level_items(text: str) -> list[str] | None:
    """The source text of each item of a top-level JSON list, or None when the text is not one list."""
    items, depth, start = [], 0, None
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth == 1:
                if token != "[" or text[: match.start()].strip():
                    return None
                start = match.end()
        elif token in "]}":
            depth -= 1
            if depth == 0:
                items.append(text[start : match.start()])
                if text[match.end() :].strip():
                    return None
                return [] if len(items) == 1 and not items[0].strip() else items
        elif token == "," and depth == 1:
            items.append(text[start : match.start()])
            start = match.end()
    return None


def _items_one_by_one(text: str) -> tuple[list[object], dict[int, str]]:
    """A list too deeply nested for one ``json.loads``: parse item by item so one deep record is skipped."""
    items = _top_level_items(text)
    if items is None:
        raise ImportFileError("nested too deeply to parse (and not a list whose items could be read one by one)")
    records: list[object] = []
    problems: dict[int, str] = {}
    for i, source in enumerate(items):
        try:
            records.append(json.loads(source))
        except RecursionError:
            records.append(None)
            problems[i] = "nested too deeply to parse"
        except json.JSONDecodeError as exc:
            records.append(None)
            problems[i] = f"not valid JSON: {exc.msg}"
    return records, problems


def _json_lines(text: str, error: json.JSONDecodeError) -> tuple[list[object], dict[int, str]]:
    """JSON Lines (one record per line); a file whose first line is not a record is simply not JSON."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        first = json.loads(lines[0][1]) if len(lines) > 1 else None
    except (json.JSONDecodeError, RecursionError):
        first = None
    if not isinstance(first, dict | list):
        raise ImportFileError(f"not valid JSON nor JSON Lines: {error.msg} (line {error.lineno}, column {error.colno})")
    records: list[object] = []
    problems: dict[int, str] = {}
    for i, (n, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except RecursionError:
            records.append(None)
            problems[i] = f"line {n}: nested too deeply to parse"
        except json.JSONDecodeError as exc:
            records.append(None)
            problems[i] = f"line {n}: not valid JSON: {exc.msg} (column {exc.colno})"
    return records, problems


def parse_records(text: str) -> tuple[list[object], dict[int, str]]:
    """The records of a JSON list (or of JSON Lines, or one record), and per-record parse problems."""
    if not text.strip():
        raise ImportFileError("the file is empty")
    try:
        data = json.loads(text)
    except RecursionError:
        return _items_one_by_one(text)
    except json.JSONDecodeError as exc:
        return _json_lines(text, exc)
    if isinstance(data, dict) and any(isinstance(data.get(k), list) for k in TURN_KEYS):
        return [data], {}  # a single record (or JSON Lines of one line)
    if isinstance(data, dict):
        keys = ", ".join(safe_text(str(k), 40) for k in list(data)[:5]) or "none"
        raise ImportFileError(f"expected a JSON list of records (or JSON Lines), got an object (keys: {keys})")
    if not isinstance(data, list):
        raise ImportFileError(f"expected a JSON list of records (or JSON Lines), got {_kind(data)}")
    if not data:
        raise ImportFileError("the list holds no records")
    return data, {}


def read_records(path: Path) -> RawRecords:
    """Read and parse ``path``; raises ``ImportFileError`` (one line) for a problem with the whole file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror or exc}") from None
    records, problems = parse_records(decode(raw))
    return RawRecords(hashlib.sha256(raw).hexdigest()[:16], records, problems)


def import_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be imported at all (one line naming the file), or None: what recipe checks ask."""
    if not path.is_file():
        return f"file not found: {safe_text(str(path))}"
    try:
        read_records(path)
    except ImportFileError as exc:
        return f"{safe_text(str(path))}: {exc}"
    return None
