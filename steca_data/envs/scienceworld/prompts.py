"""ScienceWorld text: the task intro, the action templates of the prompt, its version, template thoughts.

The action list follows ScienceWorld's templates (``get_possible_actions``) with ETO's glosses; ``OBJ`` and
``LOC`` stand for names from the observations.
"""

from __future__ import annotations

import re

PROMPT_VERSION = "sciworld-v1"

INTRO = (
    "Do a science experiment in a simulated world of rooms (kitchen, foundry, workshop, bathroom, outside, "
    "living room, bedroom, greenhouse, art studio, hallway) to solve a task."
)

ACTIONS = [
    "look around",
    "look at OBJ",
    "look in OBJ",
    "inventory",
    "task",
    "open OBJ",
    "close OBJ",
    "go to LOC",
    "teleport to LOC",
    "pick up OBJ",
    "put down OBJ",
    "move OBJ to OBJ",
    "pour OBJ in OBJ",
    "dunk OBJ in OBJ",
    "mix OBJ",
    "activate OBJ",
    "deactivate OBJ",
    "connect OBJ to OBJ",
    "disconnect OBJ",
    "use OBJ on OBJ",
    "read OBJ",
    "eat OBJ",
    "flush OBJ",
    "focus on OBJ",
    "wait",
    "wait1",
]

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^open door to (?P<x>.+)$"), "The way to the {x} is through this door. I will open it."),
    (re.compile(r"^(go|teleport) to (?P<x>.+)$"), "I should go to the {x} to look for what the task needs."),
    (re.compile(r"^look around$"), "Let me look around to see what is in this room."),
    (re.compile(r"^focus on (?P<x>.+)$"), "The {x} is what the task is about. I will focus on it."),
    (re.compile(r"^pick up (?P<x>.+)$"), "I need the {x} for the experiment. I will pick it up."),
    (re.compile(r"^(move|pour|dunk) (?P<x>.+?) (to|in) (?P<y>.+)$"), "The {x} has to go into the {y}."),
    (re.compile(r"^(activate|deactivate) (?P<x>.+)$"), "Switching the {x} changes the conditions I need."),
    (re.compile(r"^connect (?P<x>.+?) to (?P<y>.+)$"), "The circuit needs the {x} connected to the {y}."),
    (re.compile(r"^(look at|examine) (?P<x>.+)$"), "Let me check the {x} to see how the experiment goes."),
    (re.compile(r"^use (?P<x>.+?) on (?P<y>.+)$"), "I will use the {x} on the {y} to measure it."),
    (re.compile(r"^wait1?$"), "The process takes time. I will wait."),
    (re.compile(r"^mix (?P<x>.+)$"), "Everything is in the {x}. I will mix it."),
]


def template_thought(action: str) -> str | None:
    """A thought for the common ScienceWorld moves; None falls through to the generic verb rules."""
    action = action.strip()
    for pattern, text in _RULES:
        match = pattern.match(action)
        if match:
            return text.format(**match.groupdict())
    return None
