"""Task goals as plain data, checked straight against a simulator state (no ``to_dict()``, ~0.01 ms).

Two sources, as the issue asks: virtualhome-eval's hand-written ``vh_goal`` (node states, edges and ordered
action groups such as ``"LOOKAT|WATCH"``) where it exists, else the difference between the dataset's initial
and final graph, without the character's own changes (its room, what it holds or sits on, what it is close
to or faces), which every program changes and no task is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Relations a graph difference may require: where objects are. CLOSE/FACING change as a side effect of
# walking and are not task conditions; BETWEEN only links doors and rooms.
_DIFF_RELATIONS = ("ON", "INSIDE")
_CHARACTER_STATES = {"SITTING", "LYING"}


@dataclass(frozen=True)
class Goal:
    """All conditions must hold at once; ``actions`` must have been executed in this order (one of each group)."""

    source: Literal["vh", "diff"]
    node_states: tuple[tuple[int, str], ...] = ()
    edges: tuple[tuple[int, str, int], ...] = ()
    absent_edges: tuple[tuple[int, str, int], ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.node_states) + len(self.edges) + len(self.absent_edges) + len(self.actions)

    @property
    def empty(self) -> bool:
        return self.size == 0


def goal_from_vh(vh_goal: dict[str, Any]) -> Goal:
    """virtualhome-eval's goal, duplicates removed and sorted (its evaluator de-duplicates the same way)."""
    states, edges = set(), set()
    for cond in vh_goal.get("goal", []):
        if "state" in cond:
            states.add((int(cond["id"]), str(cond["state"]).upper()))
        else:
            edges.add((int(cond["from_id"]), str(cond["relation_type"]).upper(), int(cond["to_id"])))
    actions = tuple(dict.fromkeys(str(a).upper().replace(" ", "") for a in vh_goal.get("actions", [])))
    return Goal("vh", tuple(sorted(states)), tuple(sorted(edges)), (), actions)


def goal_from_diff(init: dict[str, Any], final: dict[str, Any]) -> Goal:
    """Node states that appear and ON/INSIDE edges that appear or vanish, ignoring the character's own."""
    characters = {n["id"] for n in init["nodes"] if n["class_name"] == "character"}
    before = {n["id"]: set(n["states"]) for n in init["nodes"]}
    states = set()
    for node in final["nodes"]:
        if node["id"] in characters:
            continue
        for s in set(node["states"]) - before.get(node["id"], set()):
            if s not in _CHARACTER_STATES:
                states.add((node["id"], s))

    def placed(graph: dict[str, Any]) -> set[tuple[int, str, int]]:
        return {
            (e["from_id"], e["relation_type"], e["to_id"])
            for e in graph["edges"]
            if e["relation_type"] in _DIFF_RELATIONS
            and e["from_id"] not in characters
            and e["to_id"] not in characters
            # curtain<->curtain INSIDE pairs are data noise (see simulator.drop_inside_cycles)
            and e["from_id"] != e["to_id"]
        }

    old, new = placed(init), placed(final)
    cycles = {(a, r, b) for a, r, b in old | new if (b, r, a) in old | new}
    return Goal("diff", tuple(sorted(states)), tuple(sorted(new - old - cycles)), tuple(sorted(old - new - cycles)))


def match_actions(groups: tuple[str, ...], executed: list[str]) -> int:
    """How many action groups the executed actions meet in order (greedy, as virtualhome-eval scores them)."""
    matched, i = 0, 0
    for group in groups:
        options = set(group.split("|"))
        while i < len(executed) and executed[i] not in options:
            i += 1
        if i == len(executed):
            break
        matched += 1
        i += 1
    return matched
