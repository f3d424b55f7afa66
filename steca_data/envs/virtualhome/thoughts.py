"""Template thoughts for VirtualHome expert steps, and what the system prompt needs (action templates, version).

Like ``steca_data``'s TWX/ALFWorld rules: a deterministic sentence from the action and the observation that
preceded it, so offline builds still train the Thought/Action format. The observation only adds where an
object was seen (``The cup is on the table.``).
"""

from __future__ import annotations

import re

from steca_data.envs.virtualhome.actions import ACTION_TEMPLATES

PROMPT_VERSION = "virtualhome-v1"
__all__ = ["ACTION_TEMPLATES", "PROMPT_VERSION", "template_thought"]

_ROOMS = {"bathroom", "bedroom", "dining room", "home office", "kitchen", "living room"}

_RULES: list[tuple[str, str]] = [
    (r"^put (?P<x>.+?) on (?P<y>.+)$", "The {x} should be on the {y}, so I will put it there."),
    (r"^put (?P<x>.+?) in (?P<y>.+)$", "The {x} belongs in the {y}, so I will put it inside."),
    (r"^pour (?P<x>.+?) into (?P<y>.+)$", "I will pour the {x} into the {y}."),
    (r"^(walk|run) to (?P<x>.+)$", "{go}"),
    (r"^find (?P<x>.+)$", "I need the {x}. I will find it."),
    (r"^grab (?P<x>.+)$", "{grab}"),
    (r"^open (?P<x>.+)$", "I will open the {x}."),
    (r"^close (?P<x>.+)$", "I am done with the inside of the {x}, so I will close it."),
    (r"^switch on (?P<x>.+)$", "The {x} has to be on. I will switch it on."),
    (r"^switch off (?P<x>.+)$", "The {x} is no longer needed, so I will switch it off."),
    (r"^put on (?P<x>.+)$", "I will put on the {x}."),
    (r"^take off (?P<x>.+)$", "I will take off the {x}."),
    (r"^put back (?P<x>.+)$", "I am done with the {x}. I will put it back where it was."),
    (r"^drop (?P<x>.+)$", "I do not need to hold the {x} any more. I will drop it."),
    (r"^drink (?P<x>.+)$", "I will drink from the {x}."),
    (r"^look at (?P<x>.+)$", "I will look at the {x}."),
    (r"^turn to (?P<x>.+)$", "I will turn to face the {x}."),
    (r"^watch (?P<x>.+)$", "I will watch the {x}."),
    (r"^read (?P<x>.+)$", "I will read the {x}."),
    (r"^point at (?P<x>.+)$", "I will point at the {x}."),
    (r"^touch (?P<x>.+)$", "I will touch the {x}."),
    (r"^sit on (?P<x>.+)$", "I will sit down on the {x}."),
    (r"^lie on (?P<x>.+)$", "I will lie down on the {x}."),
    (r"^stand up$", "I should stand up before going on."),
    (r"^sleep$", "Now I can go to sleep."),
    (r"^wake up$", "It is time to wake up."),
    (r"^(?P<v>wipe|wash|rinse|scrub) (?P<x>.+)$", "The {x} needs cleaning. I will {v} it."),
    (r"^squeeze (?P<x>.+)$", "I will squeeze the {x}."),
    (r"^(?P<v>push|pull) (?P<x>.+)$", "I will {v} the {x}."),
    (r"^type on (?P<x>.+)$", "I will type on the {x}."),
    (r"^plug in (?P<x>.+)$", "The {x} needs power. I will plug it in."),
    (r"^plug out (?P<x>.+)$", "I will unplug the {x}."),
]
_COMPILED = [(re.compile(p), text) for p, text in _RULES]


def _where(x: str, observation: str) -> str | None:
    m = re.search(rf"The {re.escape(x)} is (on|inside) the ([^.]+)\.", observation)
    return f"{m.group(1)} the {m.group(2)}" if m else None


def template_thought(action: str, observation: str) -> str | None:
    """A short thought that motivates ``action`` from the observation before it; None if no rule fits."""
    text = " ".join(action.strip().lower().split())
    for pattern, template in _COMPILED:
        m = pattern.match(text)
        if not m:
            continue
        fields = {k: v for k, v in m.groupdict().items() if v}
        if template == "{go}":
            x = fields["x"]
            if x in _ROOMS:
                return f"I need to be in the {x}. I will go there."
            return f"I need the {x}. I will go to it."
        if template == "{grab}":
            x = fields["x"]
            where = _where(x, observation)
            return f"The {x} is {where}. I will take it." if where else f"The {x} is here. I will take it."
        return template.format(**fields)
    return None
