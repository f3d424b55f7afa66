"""Text actions in STeCa's templates <-> the executor's script actions.

Only the 37 actions that the dataset's gold programs use are offered (CUT, EAT, GREET, MOVE, RELEASE never
occur in them). Object names are class names with spaces instead of underscores (``coffee maker``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (template, executor action). Order matters for parsing: two-argument templates first, and the fixed
# phrase "put on {}" (clothes) after "put {} on {}" so "put cup on table" is never read as clothes.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("put {} on {}", "PUTBACK"),
    ("put {} in {}", "PUTIN"),
    ("pour {} into {}", "POUR"),
    ("walk to {}", "WALK"),
    ("run to {}", "RUN"),
    ("find {}", "FIND"),
    ("grab {}", "GRAB"),
    ("open {}", "OPEN"),
    ("close {}", "CLOSE"),
    ("switch on {}", "SWITCHON"),
    ("switch off {}", "SWITCHOFF"),
    ("put on {}", "PUTON"),
    ("take off {}", "PUTOFF"),
    ("put back {}", "PUTOBJBACK"),
    ("drop {}", "DROP"),
    ("drink {}", "DRINK"),
    ("look at {}", "LOOKAT"),
    ("turn to {}", "TURNTO"),
    ("watch {}", "WATCH"),
    ("read {}", "READ"),
    ("point at {}", "POINTAT"),
    ("touch {}", "TOUCH"),
    ("sit on {}", "SIT"),
    ("lie on {}", "LIE"),
    ("stand up", "STANDUP"),
    ("sleep", "SLEEP"),
    ("wake up", "WAKEUP"),
    ("wipe {}", "WIPE"),
    ("wash {}", "WASH"),
    ("rinse {}", "RINSE"),
    ("scrub {}", "SCRUB"),
    ("squeeze {}", "SQUEEZE"),
    ("push {}", "PUSH"),
    ("pull {}", "PULL"),
    ("type on {}", "TYPE"),
    ("plug in {}", "PLUGIN"),
    ("plug out {}", "PLUGOUT"),
)
TEMPLATE_OF = {action: template for template, action in TEMPLATES}
ARITY = {action: template.count("{}") for template, action in TEMPLATES}

# For the system prompt: going places first, then handling objects, then the rest; capitals stand for names
# from the observations.
_PROMPT_ORDER = (
    "WALK", "RUN", "FIND", "GRAB", "OPEN", "CLOSE", "PUTBACK", "PUTIN", "PUTOBJBACK", "DROP", "SWITCHON",
    "SWITCHOFF", "PLUGIN", "PLUGOUT", "SIT", "STANDUP", "LIE", "SLEEP", "WAKEUP", "TURNTO", "LOOKAT", "WATCH",
    "READ", "POINTAT", "TOUCH", "TYPE", "DRINK", "POUR", "WASH", "RINSE", "SCRUB", "WIPE", "SQUEEZE", "PUSH",
    "PULL", "PUTON", "PUTOFF",
)  # fmt: skip
ACTION_TEMPLATES: list[str] = [
    TEMPLATE_OF[action].replace("{}", "OBJ", 1).replace("{}", "RECEP" if action in ("PUTBACK", "PUTIN") else "OBJ")
    for action in _PROMPT_ORDER
]


def _pattern(template: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in template.split("{}")]
    return re.compile("^" + "(.+?)".join(parts[:-1]) + ("(.+)" if len(parts) > 1 else "") + parts[-1] + "$")


_PATTERNS = [(_pattern(template), action) for template, action in TEMPLATES]
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ParsedAction:
    action: str  # executor action name, e.g. "PUTBACK"
    names: tuple[str, ...]  # class names, e.g. ("cup", "kitchen_table")


def to_class_name(name: str) -> str:
    name = _SPACES.sub(" ", name.strip().lower())
    if name.startswith("the "):
        name = name[4:]
    return name.replace(" ", "_")


def to_text_name(class_name: str) -> str:
    return class_name.replace("_", " ")


def parse_action(text: str) -> ParsedAction | None:
    """``"put cup on kitchen table"`` -> ``ParsedAction("PUTBACK", ("cup", "kitchen_table"))``; None if nothing fits."""
    text = _SPACES.sub(" ", str(text).strip().lower()).rstrip(".")
    for pattern, action in _PATTERNS:
        m = pattern.match(text)
        if m is None:
            continue
        names = tuple(to_class_name(g) for g in m.groups())
        if all(names):
            return ParsedAction(action, names)
    return None


def render_action(action: str, class_names: tuple[str, ...] | list[str]) -> str:
    """The text action for an executor action and its class names (the inverse of ``parse_action``)."""
    return TEMPLATE_OF[action].format(*(to_text_name(n) for n in class_names))
