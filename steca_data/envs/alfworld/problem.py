"""One ALFWorld game from a floor plan: sample a task, populate the room, write the PDDL problem.

The output has the shape of the official data: a ``game.tw-pddl`` JSON (domain, grammar with the goal
text, problem, ``solvable``, ``walkthrough``) and a ``traj_data.json`` whose ``task_type`` and
``pddl_params`` the hand-coded expert reads. Identifiers follow THOR's form (``Apple|+01.20|+00.90|-00.30``,
sinks as ``Sink|…|SinkBasin``) mangled the way ALFRED's generator mangles them, so the stock demangler
turns them into 'apple 1', 'sinkbasin 1'.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from steca_data.envs.alfworld.scenes import LAMP_HOSTS, FloorPlan, Receptacle, pickupable_types, thor_id

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
# Appliance each state-changing task needs, and the affordance its object must have.
_APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
# A hot object put in a fridge (or a cold one in a microwave) reads as a contradiction; ALFRED avoids it.
_CONFLICTING_PARENT = {"pick_heat_then_place_in_recep": ("Fridge",), "pick_cool_then_place_in_recep": ("Microwave",)}
SIZES = {"small": 7, "full": None}  # receptacles kept in a room (None: all of the floor plan)
SMALL_DISTRACTOR_TYPES = 4


class NoTask(Exception):
    """This floor plan cannot host the requested task type (missing appliance, no valid object)."""


@dataclass
class GameSpec:
    task_type: str
    object_target: str
    parent_target: str
    toggle_target: str
    floor_plan: FloorPlan
    goal: str
    problem: str
    placements: dict[str, str]  # object THOR id -> receptacle THOR id
    receptacles: list[Receptacle]

    @property
    def folder(self) -> str:
        parent = self.toggle_target or self.parent_target
        return f"{self.task_type}-{self.object_target}-None-{parent}-{self.floor_plan.number}"


@cache
def _c():
    import alfworld.gen.constants as constants

    return constants


def can_contain(rtype: str, otype: str) -> bool:
    return otype in _c().VAL_RECEPTACLE_OBJECTS.get(rtype, ())


def mangle(name: str) -> str:
    """ALFRED's PDDL escaping of THOR ids (see PlannedGameState.fix_pddl_str_chars)."""
    for a, b in (("-", "_minus_"), ("|", "_bar_"), ("+", "_plus_"), (".", "_dot_"), (",", "_comma_")):
        name = name.replace(a, b)
    return name


def loc_name(loc: tuple[int, int, int, int]) -> str:
    return mangle("loc|" + "|".join(str(v) for v in loc))


# ------------------------------------------------------------------------------------------- sampling


def _sample_task(plan: FloorPlan, task_type: str, rng: random.Random) -> tuple[str, str, str]:
    """(object, parent receptacle or '', toggle or '') valid for this floor plan, else NoTask."""
    c = _c()
    if plan.room not in c.GOALS_VALID[task_type]:
        raise NoTask(f"{task_type} is not valid in a {plan.room}")
    rtypes = plan.rtypes()
    objects = [o for o in plan.object_types if any(can_contain(r, o) for r in rtypes)]
    if task_type == "look_at_obj_in_light":
        if not plan.lamps or not rtypes & set(LAMP_HOSTS):
            raise NoTask("no lamp")
        if not objects:
            raise NoTask("no object")
        return rng.choice(objects), "", rng.choice(plan.lamps)
    if task_type in _APPLIANCE:
        appliance, affordance = _APPLIANCE[task_type]
        if appliance not in rtypes:
            raise NoTask(f"no {appliance}")
        objects = [o for o in objects if o in c.VAL_ACTION_OBJECTS[affordance]]
    pairs = [
        (o, r)
        for o in objects
        for r in sorted(rtypes)
        if can_contain(r, o)
        and r != _APPLIANCE.get(task_type, ("",))[0]
        and r not in _CONFLICTING_PARENT.get(task_type, ())
        and any(can_contain(s, o) for s in rtypes if s != r)  # the object must start somewhere else
    ]
    if not pairs:
        raise NoTask("no (object, receptacle) pair")
    obj, parent = rng.choice(pairs)
    return obj, parent, ""


def _choose_receptacles(plan, task_type, obj, parent, toggle, size, rng) -> list[Receptacle]:
    """All of the floor plan's receptacles (full) or the ones the task needs plus a few others (small)."""
    limit = SIZES[size]
    if limit is None:
        return list(plan.receptacles)
    by_type: dict[str, list[Receptacle]] = {}
    for r in plan.receptacles:
        by_type.setdefault(r.rtype, []).append(r)
    needed = []
    if parent:
        needed.append(rng.choice(by_type[parent]))
    if task_type in _APPLIANCE:
        needed.append(rng.choice(by_type[_APPLIANCE[task_type][0]]))
    if toggle:
        needed.append(rng.choice([r for t in LAMP_HOSTS for r in by_type.get(t, [])]))
    sources = [r for r in plan.receptacles if can_contain(r.rtype, obj) and r.rtype != parent and r not in needed]
    if task_type in _APPLIANCE:
        sources = [r for r in sources if r.rtype != _APPLIANCE[task_type][0]] or sources
    needed += rng.sample(sources, min(len(sources), 2 if task_type == "pick_two_obj_and_place" else 1))
    rest = [r for r in plan.receptacles if r not in needed]
    rng.shuffle(rest)
    chosen = needed + rest[: max(0, limit - len(needed))]
    return sorted(chosen, key=lambda r: r.thor_id)


def _place(obj_type, count, receptacles, rng, avoid=()) -> list[Receptacle]:
    hosts = [r for r in receptacles if can_contain(r.rtype, obj_type) and r.rtype not in avoid]
    if not hosts:
        return []
    return [rng.choice(hosts) for _ in range(count)]


def sample_game(plan: FloorPlan, task_type: str, size: str, rng: random.Random) -> GameSpec:
    """A random but valid game of ``task_type`` on ``plan``; raises NoTask when the plan cannot host it."""
    obj, parent, toggle = _sample_task(plan, task_type, rng)
    receptacles = _choose_receptacles(plan, task_type, obj, parent, toggle, size, rng)
    avoid = {parent} | ({_APPLIANCE[task_type][0]} if task_type in _APPLIANCE else set())
    count = rng.randint(2, 3) if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    placements: dict[str, str] = {}
    objects: list[tuple[str, str]] = []  # (thor id, type)

    def put(kind: str, hosts: list[Receptacle]) -> None:
        for host in hosts:
            oid = thor_id(kind, rng)
            placements[oid] = host.thor_id
            objects.append((oid, kind))

    put(obj, _place(obj, count, receptacles, rng, avoid))
    if sum(1 for _, k in objects if k == obj) < (2 if task_type == "pick_two_obj_and_place" else 1):
        raise NoTask(f"nowhere to put {obj}")
    if toggle:
        hosts = [r for r in receptacles if r.rtype in LAMP_HOSTS]
        put(toggle, [rng.choice(hosts)])
    others = [o for o in plan.object_types if o != obj and o in pickupable_types()]
    rng.shuffle(others)
    if SIZES[size] is not None:
        others = others[:SMALL_DISTRACTOR_TYPES]
    for kind in sorted(others):
        put(kind, _place(kind, rng.randint(1, 2) if SIZES[size] is None else 1, receptacles, rng))
    from alfworld.gen import goal_library

    goal = rng.choice(goal_library.gdict[task_type]["templates"]).format(
        obj=obj.lower(), recep=parent.lower(), toggle=toggle.lower(), mrecep=""
    )
    spec = GameSpec(task_type, obj, parent, toggle, plan, goal, "", placements, receptacles)
    spec.problem = write_problem(spec, objects, rng)
    return spec


# ---------------------------------------------------------------------------------------------- PDDL


def write_problem(spec: GameSpec, objects: list[tuple[str, str]], rng: random.Random) -> str:
    c = _c()
    plan = spec.floor_plan
    recs = {r.thor_id: r for r in spec.receptacles}
    start = rng.choice(plan.free_points) if plan.free_points else (0, 0)
    agent_loc = loc_name((start[0], start[1], rng.randrange(4), 30))
    otypes = sorted(set(c.OBJECTS) - (set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)))
    rtypes = sorted(set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES))
    locs = sorted({loc_name(r.loc) for r in spec.receptacles} | {agent_loc})
    decl = ["agent1 - agent"]
    decl += [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]
    decl += [f"{mangle(oid)} - object" for oid, _ in objects]
    decl += [f"{mangle(rid)} - receptacle" for rid in sorted(recs)]
    decl += [f"{loc} - location" for loc in locs]
    init = [f"(atLocation agent1 {agent_loc})"]
    for rid, r in sorted(recs.items()):
        init.append(f"(receptacleType {mangle(rid)} {r.rtype}Type)")
        init.append(f"(receptacleAtLocation {mangle(rid)} {loc_name(r.loc)})")
        if r.rtype in c.OPENABLE_CLASS_SET:
            init.append(f"(openable {mangle(rid)})")
    present_rtypes = sorted({r.rtype for r in recs.values()})
    present_otypes = sorted({k for _, k in objects})
    init += [f"(canContain {r}Type {o}Type)" for r in present_rtypes for o in present_otypes if can_contain(r, o)]
    actions = c.VAL_ACTION_OBJECTS
    for oid, kind in objects:
        m = mangle(oid)
        host = recs[spec.placements[oid]]
        init += [f"(objectType {m} {kind}Type)", f"(inReceptacle {m} {mangle(host.thor_id)})"]
        init.append(f"(objectAtLocation {m} {loc_name(host.loc)})")
        if kind in pickupable_types():
            init.append(f"(pickupable {m})")
        if kind in c.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {m})")
        for affordance, predicate in (
            ("Cleanable", "cleanable"),
            ("Heatable", "heatable"),
            ("Coolable", "coolable"),
            ("Toggleable", "toggleable"),
            ("Sliceable", "sliceable"),
        ):
            if kind in actions[affordance]:
                init.append(f"({predicate} {m})")
    from alfworld.gen import goal_library

    goal = goal_library.gdict[spec.task_type]["pddl"].format(
        obj=spec.object_target, recep=spec.parent_target, toggle=spec.toggle_target, mrecep=""
    )
    goal = goal.replace("#", "-")
    nl = "\n        "
    return (
        f"(define (problem plan_{plan.name.lower()}_{spec.task_type})\n(:domain alfred)\n(:objects\n        "
        f"{nl.join(decl)}\n        )\n(:init\n        {nl.join(init)}\n        )\n{goal}"
    )
