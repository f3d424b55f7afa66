"""TextWorldExpress text: the prompt's action templates per game, its version, and game-specific thoughts."""

from __future__ import annotations

import re

PROMPT_VERSION = "twx-v1"

_DOORS = ["move DIRECTION", "open door to LOCATION"]
_LOOK = ["look around", "inventory"]
_HANDLE = [*_LOOK, "open OBJ", "close OBJ", "take OBJ", "put OBJ in OBJ"]
ACTIONS: dict[str, list[str]] = {
    "twc": [*_HANDLE, "put OBJ on OBJ", *_DOORS],
    "coin": [*_LOOK, *_DOORS, "take coin"],
    "cookingworld": [
        *_HANDLE,
        "read cookbook",
        "slice OBJ with knife",
        "chop OBJ with knife",
        "dice OBJ with knife",
        "cook OBJ in stove",
        "cook OBJ in oven",
        "cook OBJ in toaster",
        "prepare meal",
        "eat meal",
        *_DOORS,
    ],
}

# "take X from Y" is left to the generic rule; only a bare "take X" reads differently per game
_TAKE_FROM = re.compile(r"^take .+? from .+$", re.IGNORECASE)
_TAKE_COIN = re.compile(r"^take coin$", re.IGNORECASE)
_TAKE = re.compile(r"^take (?P<x>.+)$", re.IGNORECASE)


def template_thought(game: str, action: str) -> str | None:
    """The coin game's goal and cookingworld's recipe ingredients; None for everything else."""
    action = action.strip()
    if _TAKE_FROM.match(action):
        return None
    if _TAKE_COIN.match(action):
        return "There is the coin I was looking for. I will take it."
    m = _TAKE.match(action)
    if m and game == "cookingworld":
        return f"The recipe needs the {m['x']}. I will take it."
    return None
