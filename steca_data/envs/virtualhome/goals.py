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


# Node fields that no action changes; STeCa's check compares them too (lists as sets).
_STATIC_FIELDS = ("class_name", "category", "prefab_name", "properties", "bounding_box")


@dataclass(frozen=True)
class StecaGoal:
    """STeCa's success rule over a row's ``revised_graph``: each listed node has exactly the listed states (and
    its other fields), the ``revised_nodes`` edges are gone and the ``revised_add_edges`` are present."""

    node_states: tuple[tuple[int, frozenset[str]], ...]
    absent_edges: tuple[tuple[int, str, int], ...]
    edges: tuple[tuple[int, str, int], ...]
    static_mismatch: tuple[str, ...] = ()  # "id.field" where a listed node differs from the initial graph

    @property
    def size(self) -> int:
        return len(self.node_states) + len(self.absent_edges) + len(self.edges) + len(self.static_mismatch)


def _same(a: Any, b: Any) -> bool:
    return set(a) == set(b) if isinstance(a, list) and isinstance(b, list) else a == b


def goal_from_revised(revised: dict[str, Any], init: dict[str, Any]) -> StecaGoal:
    """The rule as data: node states to hold exactly, edges to be absent / present (``{from_id, relation_type,
    to_id}`` as STeCa compares them). A listed node's unchanging fields are checked against the initial graph
    once (a node missing from the graph, or a field that differs, can never be met)."""
    nodes = {n["id"]: n for n in init["nodes"]}
    states, mismatch = [], []
    for node in revised["nodes"]:
        node_id = int(node["id"])
        have = nodes.get(node_id)
        if have is None:
            mismatch.append(f"{node_id}.id")
            continue
        mismatch.extend(f"{node_id}.{f}" for f in _STATIC_FIELDS if f in node and not _same(node[f], have.get(f)))
        states.append((node_id, frozenset(str(s).upper() for s in node.get("states", []))))

    def edges(part: str) -> tuple[tuple[int, str, int], ...]:
        return tuple(
            sorted({(int(e["from_id"]), str(e["relation_type"]).upper(), int(e["to_id"])) for e in revised[part]})
        )

    return StecaGoal(tuple(sorted(states, key=lambda x: x[0])), edges("revised_nodes"), edges("revised_add_edges"),
                     tuple(mismatch))  # fmt: skip
