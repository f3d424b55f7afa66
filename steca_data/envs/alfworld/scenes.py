"""The 120 AI2-THOR floor plans that ship with ``alfworld``: receptacles with positions, object inventories.

A floor plan's ``-openable.json`` names receptacle instances with THOR ids and a standing pose, but some
receptacle types listed in its ``-objects.json`` have no entry there (garbage cans, toasters, towel
holders...). We invent one instance for each, at a reachable grid point drawn from a generator seeded
by the floor plan alone, so a floor plan always yields the same scene whatever game is generated on it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOM_TYPES = {
    "Kitchen": range(1, 31),
    "LivingRoom": range(201, 231),
    "Bedroom": range(301, 331),
    "Bathroom": range(401, 431),
}

# Floor plans never used in train/valid_seen: two per room type, including the four ALFRED uses for
# valid_unseen (10, 219, 308, 424), so every task type has unseen scenes.
UNSEEN_FLOOR_PLANS = (10, 24, 219, 225, 308, 322, 424, 430)

# Objects that stand on furniture and are switched on (look_at_obj_in_light); THOR lists no receptacle.
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_HOSTS = ("SideTable", "Desk", "Dresser", "DiningTable", "CoffeeTable", "Shelf", "TVStand", "CounterTop")
# THOR names basins after their sink/bathtub: 'Sink|x|y|z|SinkBasin'.
BASIN_PARENT = {"SinkBasin": "Sink", "BathtubBasin": "Bathtub"}


@dataclass(frozen=True)
class Receptacle:
    thor_id: str
    rtype: str
    loc: tuple[int, int, int, int]  # grid x, grid z, rotation / 90, camera horizon


@dataclass
class FloorPlan:
    number: int
    room: str
    receptacles: list[Receptacle]
    object_types: list[str]  # pickupable object classes present in the scene
    lamps: list[str]
    free_points: list[tuple[int, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"FloorPlan{self.number}"

    def rtypes(self) -> set[str]:
        return {r.rtype for r in self.receptacles}


def _constants():
    import alfworld.gen.constants as constants

    return constants


def layouts_dir() -> Path:
    import alfworld.gen

    return Path(alfworld.gen.__file__).parent / "layouts"


def room_of(number: int) -> str:
    return next(room for room, numbers in ROOM_TYPES.items() if number in numbers)


def receptacle_type(thor_id: str) -> str:
    parts = thor_id.split("|")
    return parts[-1] if len(parts) > 4 else parts[0]


def thor_id(kind: str, rng: random.Random) -> str:
    coords = "|".join(f"{rng.uniform(-3, 3):+06.2f}" for _ in range(3))
    return f"{BASIN_PARENT[kind]}|{coords}|{kind}" if kind in BASIN_PARENT else f"{kind}|{coords}"


@cache
def pickupable_types() -> frozenset[str]:
    """Object classes that some receptacle can hold: what ALFRED lets the agent pick up and place."""
    c = _constants()
    held = {o for objs in c.VAL_RECEPTACLE_OBJECTS.values() for o in objs}
    return frozenset(o for o in held if not o.endswith("Sliced"))


def static_receptacle_types() -> set[str]:
    c = _constants()
    return set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)


@cache
def load_floor_plan(number: int) -> FloorPlan:
    """Receptacles (real THOR ids and poses, invented ones where missing) and object classes of a floor plan."""
    import numpy as np

    root = layouts_dir()
    objects = json.loads((root / f"FloorPlan{number}-objects.json").read_text())
    poses = json.loads((root / f"FloorPlan{number}-openable.json").read_text())
    points = [(round(x / 0.25), round(z / 0.25)) for x, z in np.load(root / f"FloorPlan{number}-layout.npy").tolist()]
    rng = random.Random(f"floorplan:{number}")
    statics = static_receptacle_types()
    used: set[tuple[int, int, int, int]] = set()

    def unique(loc: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        # One receptacle per location keeps 'go to X' and what is in reach unambiguous.
        x, z, rot, horizon = loc
        while (x, z, rot, horizon) in used:
            horizon += 15
        used.add((x, z, rot, horizon))
        return x, z, rot, horizon

    receptacles = []
    for rid in sorted(poses):
        kind = receptacle_type(rid)
        if kind in statics:
            x, z, rot, horizon = poses[rid]
            receptacles.append(
                Receptacle(rid, kind, unique((round(x / 0.25), round(z / 0.25), int(rot) // 90, int(horizon))))
            )
    present = {r.rtype for r in receptacles}
    for kind in sorted(set(objects) & statics - present):
        x, z = rng.choice(points)
        receptacles.append(Receptacle(thor_id(kind, rng), kind, unique((x, z, rng.randrange(4), 30))))
    taken = {(r.loc[0], r.loc[1]) for r in receptacles}
    free = sorted(set(points) - taken)
    object_types = sorted(set(objects) & pickupable_types())
    lamps = sorted(set(objects) & set(LAMPS))
    return FloorPlan(number, room_of(number), receptacles, object_types, lamps, free)


def all_floor_plans() -> list[int]:
    return sorted(int(p.name[len("FloorPlan") : -len("-objects.json")]) for p in layouts_dir().glob("*-objects.json"))


def floor_plans_for(fold: str) -> list[int]:
    """valid_unseen uses only the held-out floor plans; train and valid_seen use all the others."""
    plans = all_floor_plans()
    if fold == "valid_unseen":
        return [p for p in plans if p in UNSEEN_FLOOR_PLANS]
    return [p for p in plans if p not in UNSEEN_FLOOR_PLANS]
