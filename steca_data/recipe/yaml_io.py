"""Reading a recipe's YAML as a careful user would want: text only, no duplicate keys, no alias bombs.

PyYAML's ``safe_load`` keeps the last of two equal keys (a second ``env:`` silently replaces the first),
expands aliases without limit (a few lines of anchors describe billions of nodes, which validation then
walks for minutes) and fails on binary or UTF-16 files with a traceback. Here the file is composed once
into nodes, checked, and only then constructed; every problem is a ``YamlProblem`` with its line.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000  # a recipe is a few kB
MAX_ALIASES = 200  # a recipe that reuses a block a few times needs a handful
MAX_NODES = 50_000  # nodes after expanding aliases; a large recipe has a few hundred
MAX_DEPTH = 64  # nesting levels; recipes use four or five


class YamlProblem(Exception):
    """A recipe file that cannot be read as YAML: a message, the 1-based line when known, the YAML path."""

    def __init__(self, message: str, line: int | None = None, path: tuple[str, ...] = ()):
        super().__init__(message)
        self.message, self.line, self.path = message, line, path


def read_text(path: Path) -> str:
    """The recipe as text: UTF-8 (a BOM is fine), not binary, not UTF-16/32, not huge."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise YamlProblem("is a directory, not a recipe file") from None
    except OSError as exc:
        raise YamlProblem(f"cannot read the recipe: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise YamlProblem(f"is {len(data)} bytes; a recipe is a small YAML text file (at most {MAX_BYTES})")
    boms = {
        "UTF-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE),
        "UTF-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE),
    }
    for name, marks in boms.items():
        if data.startswith(marks):
            raise YamlProblem(f"is {name} encoded; save the recipe as UTF-8")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise YamlProblem("is a binary file (or UTF-16 without a byte-order mark), not YAML text", line)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlProblem(f"is not UTF-8 (byte 0x{data[exc.start]:02x}); save the recipe as UTF-8", line) from None


class _Loader(yaml.SafeLoader):
    """A safe loader that counts aliases and nesting while composing, so a bomb stops early."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlProblem(f"more than {MAX_ALIASES} aliases (*name); expand them by hand", mark.line + 1)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> YamlProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return YamlProblem(f"invalid YAML: {problem}", mark.line + 1 if mark else None)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.id}>"


def _check_expansion(root: yaml.Node) -> None:
    """Nodes and depth of the document once aliases are expanded (shared nodes counted each time), bounded."""
    seen: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        if id(node) in seen:
            return seen[id(node)]
        line = node.start_mark.line + 1
        if id(node) in open_nodes:
            raise YamlProblem("an alias refers to a block that contains it (recursive)", line)
        open_nodes.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        parts = [measure(child) for child in children]
        open_nodes.discard(id(node))
        size, depth = 1 + sum(p[0] for p in parts), 1 + max((p[1] for p in parts), default=0)
        if size > MAX_NODES:
            raise YamlProblem(f"aliases expand to more than {MAX_NODES} values (an alias bomb?)", line)
        if depth > MAX_DEPTH:
            raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", line)
        seen[id(node)] = (size, depth)
        return size, depth

    measure(root)


def _index_and_check_keys(root: yaml.Node) -> dict[tuple[str, ...], int]:
    """Map YAML paths to 1-based lines, rejecting a key that appears twice in one mapping."""
    index: dict[tuple[str, ...], int] = {(): root.start_mark.line + 1}
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *base' may be overridden by the keys next to it
                text, line = _key_text(key), key.start_mark.line + 1
                if (key.tag, text) in first:
                    raise YamlProblem(
                        f"duplicate key (first at line {first[key.tag, text]}; the second would replace it)",
                        line,
                        (*path, text),
                    )
                first[key.tag, text] = line
                index.setdefault((*path, text), line)
                stack.append((value, (*path, text)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index.setdefault((*path, str(i)), item.start_mark.line + 1)
                stack.append((item, (*path, str(i))))
    return index


def load_yaml(text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The document's value and a YAML-path -> line index; raises ``YamlProblem``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _check_expansion(root)
        index = _index_and_check_keys(root)
        return loader.construct_document(root), index
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc) from None
    except RecursionError:
        raise YamlProblem(f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()


def parse_value(raw: str) -> Any:
    """A ``--set`` value read as YAML (``40``, ``[a, b]``, ``{n: 3}``), or the raw text when it is not YAML."""
    if raw == "":
        return ""
    try:
        value, _ = load_yaml(raw)
    except YamlProblem:
        return raw
    return value
