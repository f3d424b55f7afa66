"""ALFWorld text: the prompt's action templates (the same for every task type) and its version."""

from __future__ import annotations

PROMPT_VERSION = "alfworld-v1"

ACTIONS = [
    "go to RECEP",
    "open RECEP",
    "close RECEP",
    "take OBJ from RECEP",
    "move OBJ to RECEP",
    "examine RECEP",
    "use LAMP",
    "heat OBJ with microwave",
    "cool OBJ with fridge",
    "clean OBJ with sinkbasin",
    "inventory",
    "look",
]
