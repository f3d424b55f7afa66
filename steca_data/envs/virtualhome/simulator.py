"""One VirtualHome episode on virtualhome-eval's evolving-graph executor, driven by STeCa-style text actions.

A task's graph is built once per process (``load_world``, shared read-only by all sessions) and every reset
makes a fresh ``EnvironmentState`` over it, so a reset restores the initial state exactly. Text actions go
through ``ScriptExecutor`` one script line at a time; names resolve to node ids deterministically. The
observation and the goal check read the state object directly (about 0.1 ms) rather than ``to_dict()``
(about 20 ms). A wrong action of any kind gives ``"Nothing happens."``; nothing here raises on agent input.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtualhome_eval.simulation.evolving_graph.environment import (
    EnvironmentGraph,
    EnvironmentState,
    Property,
    Relation,
    State,
)
from virtualhome_eval.simulation.evolving_graph.execution import ExecutionInfo, ScriptExecutor, _get_room_node
from virtualhome_eval.simulation.evolving_graph.scripts import Action, Script, ScriptLine, ScriptObject

from steca_data.envs.virtualhome.actions import ARITY, TEMPLATES, parse_action, render_action, to_text_name
from steca_data.envs.virtualhome.data import VHProgram, load_graphs, load_name_equivalence, load_programs, load_vh_goals
from steca_data.envs.virtualhome.goals import (
    Goal,
    StecaGoal,
    goal_from_diff,
    goal_from_revised,
    goal_from_vh,
    match_actions,
)
from steca_data.envs.virtualhome.steca_tests import StecaRow, load_row_graphs

# the executor logs every refused action at INFO: thousands of lines in a build log, none of them news
logging.getLogger("virtualhome_eval").setLevel(logging.WARNING)

NOTHING_HAPPENS = "Nothing happens."
_HIDDEN_STATES = {State.CLEAN}  # on nearly every object; shown only as the absence of "dirty"
_HOLDS = (Relation.HOLDS_RH, Relation.HOLDS_LH)
# Executor actions whose only argument may be any object of the house (the executor walks there).
_ANYWHERE = ("WALK", "RUN", "FIND")
_MAX_INSTANCES = 8  # instances of one name tried per argument (scene 1 has at most 33 of a class: floors)


def _executor_classes() -> dict[str, str]:
    """Actions the executor runs with the same executor (RUN = WALK, WASH = RINSE = SCRUB, PUSH = PULL): their
    admissibility is the same, so the admissible list checks each group once."""
    table = ScriptExecutor._action_executors
    canonical: dict[str, str] = {}
    seen: list[tuple[object, str]] = []
    for _, action in TEMPLATES:
        executor = table.get(Action[action])
        key = (type(executor), tuple(sorted(vars(executor).items(), key=repr)))
        for other_key, other in seen:
            if other_key == key:
                canonical[action] = other
                break
        else:
            seen.append((key, action))
            canonical[action] = action
    return canonical


_CANONICAL = _executor_classes()
_WALKER = ScriptExecutor._action_executors[Action.WALK]


def drop_inside_cycles(graph: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Remove INSIDE edges whose reverse is also an INSIDE edge (scene 1's curtain pairs; they hide each other)."""
    inside = {(e["from_id"], e["to_id"]) for e in graph["edges"] if e["relation_type"] == "INSIDE"}
    cyclic = {(a, b) for a, b in inside if (b, a) in inside}
    if not cyclic:
        return graph, 0
    edges = [e for e in graph["edges"] if not (e["relation_type"] == "INSIDE" and (e["from_id"], e["to_id"]) in cyclic)]
    return {**graph, "edges": edges}, len(cyclic)


class _SharedGraph(EnvironmentGraph):
    """``get_char_node`` without the upstream in-place sort, so sessions on several threads can share a graph."""

    def __init__(self, dictionary: dict[str, Any]):
        super().__init__(dictionary)
        self._characters = sorted(self._class_name_map.get("character", []), key=lambda node: node.id)

    def get_char_node(self, char_index: int):
        yield self._characters[char_index]


@dataclass(frozen=True)
class World:
    """Everything about a task that does not change during an episode."""

    program: VHProgram
    graph: _SharedGraph
    goal: Goal
    character: int
    rooms: frozenset[int]
    by_class: dict[str, tuple[int, ...]]  # class name -> node ids, ascending
    placed_under: dict[tuple[int, str], frozenset[int]]  # (to id, ON/INSIDE) -> from ids in the initial graph
    dropped_inside_edges: int
    steca_goal: StecaGoal | None = None  # success by STeCa's rule instead of ``goal`` (its test files)
    bindings: tuple[tuple[str, int], ...] = ()  # class name -> instance bound at reset (STeCa's object_id_dict)
    gold: tuple[str, ...] = ()  # the gold program as text actions when the task states them (STeCa's action_list)


def build_world(file_id: str) -> World:
    init, final = load_graphs(file_id)
    return make_world(load_programs()[file_id], init, final, load_vh_goals().get(file_id))


def build_steca_world(row: StecaRow, root: Path, rule: str) -> World:
    """A STeCa test row on its scene's initial graph. ``rule`` 'steca' judges success by the row's
    ``revised_graph``; 'goal' by virtualhome-eval's goal where it has one, else the graph difference. Names
    start bound to the row's ``object_id_dict`` ids, as STeCa's environment starts (those of the graph only)."""
    init, final = load_row_graphs(root, row)
    vh_goal = load_vh_goals().get(row.scene_file_id) if row.scene_file_id else None
    world = make_world(row.program, init, final, vh_goal)
    steca_goal = goal_from_revised(row.revised, init) if rule == "steca" else None
    classes = {node["id"]: node["class_name"] for node in init["nodes"]}
    bindings = tuple(sorted((name, i) for name, i in row.object_ids.items() if classes.get(i) == name))
    return dataclasses.replace(world, steca_goal=steca_goal, bindings=bindings, gold=row.actions)


def make_world(program: VHProgram, init: dict[str, Any], final: dict[str, Any], vh_goal: dict | None) -> World:
    init, dropped = drop_inside_cycles(init)
    goal = goal_from_vh(vh_goal) if vh_goal is not None else None
    if goal is None or goal.empty:  # 4 of virtualhome-eval's goals are empty: use the graph difference
        goal = goal_from_diff(init, final)
    graph = _SharedGraph(init)
    by_class: dict[str, list[int]] = {}
    rooms, character = set(), None
    for node in init["nodes"]:
        by_class.setdefault(node["class_name"], []).append(node["id"])
        if node["category"] == "Rooms":
            rooms.add(node["id"])
        if node["class_name"] == "character" and (character is None or node["id"] < character):
            character = node["id"]
    placed: dict[tuple[int, str], set[int]] = {}
    for e in init["edges"]:
        if e["relation_type"] in ("ON", "INSIDE"):
            placed.setdefault((e["to_id"], e["relation_type"]), set()).add(e["from_id"])
    return World(
        program=program,
        graph=graph,
        goal=goal,
        character=int(character) if character is not None else -1,
        rooms=frozenset(rooms),
        by_class={name: tuple(sorted(ids)) for name, ids in sorted(by_class.items())},
        placed_under={key: frozenset(ids) for key, ids in placed.items()},
        dropped_inside_edges=dropped,
    )


class _WorldCache:
    """Process-wide LRU of built worlds (a graph is ~20 ms to parse and build; a build replays tasks often)."""

    def __init__(self, size: int = 128):
        self.size = size
        self._worlds: OrderedDict[str, World] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, file_id: str, build: Callable[[], World] | None = None) -> World:
        """The world cached under ``file_id`` (a scene-1 file id, or any unique key when ``build`` is given)."""
        with self._lock:
            world = self._worlds.get(file_id)
            if world is not None:
                self._worlds.move_to_end(file_id)
                return world
        world = build() if build is not None else build_world(file_id)
        with self._lock:
            self._worlds[file_id] = world
            while len(self._worlds) > self.size:
                self._worlds.popitem(last=False)
        return world


_WORLDS = _WorldCache()


def load_world(file_id: str) -> World:
    return _WORLDS.get(file_id)


def load_steca_world(row: StecaRow, root: Path, rule: str) -> World:
    return _WORLDS.get(f"steca:{root}:{row.fold}:{row.row}:{rule}", lambda: build_steca_world(row, root, rule))


def _state_words(node) -> str:
    words = sorted(s.name.lower().replace("_", " ") for s in node.states if s not in _HIDDEN_STATES)
    return f" ({', '.join(words)})" if words else ""


def _the_list(names: Iterable[str]) -> str:
    items = [f"the {n}" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class Episode:
    """The state of one episode of one task, with the text interface over it."""

    def __init__(self, world: World):
        self.world = world
        self._executor = ScriptExecutor(world.graph, load_name_equivalence())
        self.reset()

    # ------------------------------------------------------------------------------------------ state
    def reset(self) -> None:
        self.state = EnvironmentState(self.world.graph, load_name_equivalence(), instance_selection=True)
        self.bound: dict[str, int] = dict(self.world.bindings)  # class name -> the instance used last
        self.touched: set[int] = set()  # ids that were arguments of a successful action (may have moved)
        self.executed: list[str] = []  # executor action names that succeeded, in order
        self._ranks: dict[str, Any] = {}  # per-state cache: ``ranked`` per class name, "" -> ids at hand

    def _ids_from(self, node_id: int, relation: Relation) -> set[int]:
        # ``get_node_ids_from`` returns the state's own set: copy it before anyone mutates it.
        return set(self.state.get_node_ids_from(node_id, relation))

    def _has(self, a: int, relation: Relation, b: int) -> bool:
        na, nb = self.state.get_node(a), self.state.get_node(b)
        return na is not None and nb is not None and self.state.has_edge(na, relation, nb)

    def held(self) -> list[int]:
        return sorted(set().union(*(self._ids_from(self.world.character, r) for r in _HOLDS)))

    def room(self) -> int | None:
        rooms = sorted(self._ids_from(self.world.character, Relation.INSIDE) & self.world.rooms)
        return rooms[0] if rooms else None

    def _hidden(self, node_id: int) -> bool:
        """A portable object inside a closed container (not a room): the agent cannot see it. Fixtures stay
        visible (scene 1 puts the sink inside the closed kitchen counter)."""
        node = self.state.get_node(node_id)
        if node is None or Property.GRABBABLE not in node.properties:
            return False
        for container in self._ids_from(node_id, Relation.INSIDE):
            if container in self.world.rooms:
                continue
            node = self.state.get_node(container)
            if node is not None and State.CLOSED in node.states:
                return True
        return False

    def close_ids(self) -> list[int]:
        """Visible objects the character is CLOSE to, without rooms, itself and what it holds."""
        skip = self.world.rooms | {self.world.character} | set(self.held())
        close = self._ids_from(self.world.character, Relation.CLOSE) - skip
        return sorted(i for i in close if not self._hidden(i))

    def _placed_under(self, node_id: int, relation: Relation) -> list[int]:
        """Objects ON / INSIDE ``node_id`` now: the initial ones plus anything an action moved, re-checked."""
        candidates = self.world.placed_under.get((node_id, relation.name), frozenset()) | self.touched
        return sorted(i for i in candidates if self._has(i, relation, node_id))

    def visible_ids(self) -> list[int]:
        """Close objects, plus what lies on them or inside them when they are open (what the text shows)."""
        close = self.close_ids()
        seen = set(close)
        held = set(self.held())
        for node_id in close:
            node = self.state.get_node(node_id)
            under = self._placed_under(node_id, Relation.ON)
            if State.CLOSED not in node.states:
                under += self._placed_under(node_id, Relation.INSIDE)
            seen.update(i for i in under if i not in held and i != self.world.character)
        return sorted(seen)

    # ------------------------------------------------------------------------------------ observation
    def name(self, node_id: int) -> str:
        return to_text_name(self.state.get_node(node_id).class_name)

    def observation(self) -> str:
        """Where the agent is, what is close with its states, where those things are, and what it holds."""
        char = self.world.character
        parts = []
        room = self.room()
        parts.append(f"You are in the {self.name(room)}." if room is not None else "You are nowhere.")
        char_node = self.state.get_node(char)
        on = sorted(self._ids_from(char, Relation.ON))
        if on and State.SITTING in char_node.states:
            parts.append(f"You are sitting on {_the_list(sorted({self.name(i) for i in on}))}.")
        elif on and State.LYING in char_node.states:
            parts.append(f"You are lying on {_the_list(sorted({self.name(i) for i in on}))}.")
        facing = sorted({self.name(i) for i in self._ids_from(char, Relation.FACING) - self.world.rooms})
        if facing:
            parts.append(f"You are facing {_the_list(facing)}.")
        close = self.close_ids()
        if close:
            items = sorted({self.name(i) + _state_words(self.state.get_node(i)) for i in close})
            parts.append(f"You are close to {_the_list(items)}.")
        relations = set()
        held = set(self.held())
        for node_id in close:
            node = self.state.get_node(node_id)
            for relation, word in ((Relation.ON, "on"), (Relation.INSIDE, "inside")):
                if relation is Relation.INSIDE and State.CLOSED in node.states:
                    continue
                for other in self._placed_under(node_id, relation):
                    if other not in held and other != char:
                        relations.add(f"The {self.name(other)} is {word} the {self.name(node_id)}.")
        parts.extend(sorted(relations))
        if held:
            parts.append(f"You have {_the_list(sorted(self.name(i) for i in held))}.")
        return " ".join(parts)

    # -------------------------------------------------------------------------------------- actions
    def _at_hand(self) -> set[int]:
        cached = self._ranks.get("")
        if cached is None:
            cached = self._ids_from(self.world.character, Relation.CLOSE) | set(self.held())
            self._ranks[""] = cached
        return cached  # type: ignore[return-value]

    def ranked(self, class_name: str) -> list[int]:
        """The instances a name may mean, best first: the one this episode used last if still at hand, those at
        hand (close or held, lowest id first), the one used last, those in the agent's room, then the rest by
        id. Never random."""
        cached = self._ranks.get(class_name)
        if cached is not None:
            return cached
        ids = self.world.by_class.get(class_name, ())
        at_hand = self._at_hand()
        bound = self.bound.get(class_name)
        room = self.room()

        def rank(node_id: int) -> tuple[int, int]:
            if node_id == bound:
                return (0 if node_id in at_hand else 2), node_id
            if node_id in at_hand:
                return 1, node_id
            in_room = room is not None and self._has(node_id, Relation.INSIDE, room)
            return (3 if in_room else 4), node_id

        ranked = sorted(ids, key=rank) if len(ids) > 1 else list(ids)
        self._ranks[class_name] = ranked
        return ranked

    def _searchable(self, class_name: str) -> list[int]:
        """The best-ranked instance and the other instances at hand (at most ``_MAX_INSTANCES``)."""
        ranked = self.ranked(class_name)
        at_hand = self._at_hand()
        return ranked[:1] + [i for i in ranked[1:_MAX_INSTANCES] if i in at_hand]

    def resolve(self, class_name: str) -> int | None:
        ranked = self.ranked(class_name)
        return ranked[0] if ranked else None

    def _script(self, action: str, ids: tuple[int, ...]) -> Script:
        objects = [ScriptObject(self.state.get_node(i).class_name, i) for i in ids]
        return Script([ScriptLine(Action[action], objects, 0)])

    def _run(self, action: str, ids: tuple[int, ...], modify: bool) -> EnvironmentState | None:
        self._executor.info = ExecutionInfo()  # the executor appends every error message otherwise
        try:
            script = self._script(action, ids)
            if modify:
                ok, new_state = self._executor.execute_one_step(script, self.state)
                return new_state if ok else None
            return self.state if self._executor.check_one_step(script, self.state) else None
        except Exception:  # upstream asserts/TypeErrors on some impossible actions: they just fail
            return None

    def _resolve_all(self, action: str, names: tuple[str, ...], wide: bool = True) -> tuple[tuple[int, ...], bool]:
        """Node ids for the names, and whether the executor accepts the action on them. Walk/run/find go to the
        best-ranked instance; other actions take the best-ranked combination the executor accepts (told "grab
        the plate", a person takes a plate they can grab), else the best-ranked one. ``wide`` tries up to
        ``_MAX_INSTANCES`` per name; otherwise only those at hand (what the admissible list checks, for speed:
        it stays a subset of what ``act`` accepts). ``()`` when a name is unknown."""
        if action in _ANYWHERE:
            options = [self.ranked(names[0])[:1]]
        else:
            options = [self.ranked(n)[:_MAX_INSTANCES] if wide else self._searchable(n) for n in names]
        if not all(options):
            return (), False
        combos = list(itertools.product(*options))
        for ids in combos:
            if self._run(action, ids, modify=False) is not None:
                return ids, True
        return combos[0], False

    def act(self, text: str) -> bool:
        """Execute a text action; False (state unchanged) when it cannot be parsed, resolved or executed."""
        parsed = parse_action(text)
        if parsed is None:
            return False
        ids, ok = self._resolve_all(parsed.action, parsed.names)
        return ok and self.apply(parsed.action, ids)

    def apply(self, action: str, ids: tuple[int, ...]) -> bool:
        """Execute an executor action on node ids (what ``act`` does once names are resolved)."""
        new_state = self._run(action, ids, modify=True)
        if new_state is None:
            return False
        self.state = new_state
        self._ranks = {}
        self.executed.append(action)
        self.touched.update(ids)
        for node_id in ids:
            self.bound[self.state.get_node(node_id).class_name] = node_id
        return True

    def is_admissible(self, action: str, names: tuple[str, ...]) -> bool:
        return self._resolve_all(action, names, wide=False)[1]

    def candidates(self) -> list[tuple[str, tuple[str, ...]]]:
        """Actions worth checking: walk/run/find to any class of the house, the rest on visible or held objects."""
        everywhere = [n for n in self.world.by_class if n != "character"]
        visible = sorted({self.state.get_node(i).class_name for i in self.visible_ids()})
        held = sorted({self.state.get_node(i).class_name for i in self.held()})
        local = sorted(set(visible) | set(held))
        out: list[tuple[str, tuple[str, ...]]] = []
        for _, action in TEMPLATES:
            arity = ARITY[action]
            if arity == 0:
                out.append((action, ()))
            elif action in _ANYWHERE:
                out.extend((action, (n,)) for n in everywhere)
            elif arity == 1:
                out.extend((action, (n,)) for n in local)
            else:
                out.extend((action, (h, n)) for h in held for n in local if n != h)
        return out

    def _loosely_close(self) -> set[int]:
        """What the executor's ``_is_character_close_to`` accepts: objects CLOSE to the character, objects
        CLOSE to those, and objects ON those."""
        close = self._ids_from(self.world.character, Relation.CLOSE)
        near = set(close)
        for node_id in close:
            near |= self._ids_from(node_id, Relation.CLOSE)
            near.update(self._placed_under(node_id, Relation.ON))
        return near

    def go_verdicts(self, names: list[str]) -> dict[str, tuple[bool, bool]]:
        """(walk, find) admissibility for each name, decided as the executor decides it but ~7x faster: WALK
        is ``WalkExecutor.check_walk`` plus "the target is in a room"; FIND is "loosely close" (then FIND
        only looks), else, unless the target is on the character or a body part, the same as WALK (its
        joined walk-then-find executor stops after the walk). ``tests/envs/test_virtualhome.py`` checks
        this against ``check_one_step`` on real states."""
        state, near = self.state, self._loosely_close()
        char = state.get_node(self.world.character)
        out = {}
        for name in names:
            node = state.get_node(self.ranked(name)[0])
            try:
                walk = _get_room_node(state, node) is not None and _WALKER.check_walk(state, node, ExecutionInfo(), 0)
            except Exception:  # upstream asserts when the character is in no room
                walk = False
            if node.id in near:
                find = True
            else:
                find = (
                    walk and Property.BODY_PART not in node.properties and not state.has_edge(node, Relation.ON, char)
                )
            out[name] = (bool(walk), bool(find))
        return out

    def admissible(self) -> list[str]:
        """Candidate text actions that the executor accepts now (no state change), sorted. Actions that share an
        executor (run/walk, wash/rinse/scrub, push/pull) are checked once; walk/find use ``go_verdicts``."""
        candidates = self.candidates()
        go = self.go_verdicts(sorted({names[0] for action, names in candidates if action in _ANYWHERE}))
        verdicts: dict[tuple[str, tuple[str, ...]], bool] = {}
        out = set()
        for action, names in candidates:
            key = (_CANONICAL[action], names)
            if key not in verdicts:
                if key[0] in _ANYWHERE:
                    verdicts[key] = go[names[0]][key[0] == "FIND"]
                else:
                    verdicts[key] = self.is_admissible(*key)
            if verdicts[key]:
                out.add(render_action(action, names))
        return sorted(out)

    # ----------------------------------------------------------------------------------------- goal
    def goal_progress(self) -> tuple[int, int]:
        """(conditions met, conditions) of the task goal in the current state."""
        if self.world.steca_goal is not None:
            return self._steca_progress(self.world.steca_goal)
        goal, met = self.world.goal, 0
        for node_id, state_name in goal.node_states:
            node = self.state.get_node(node_id)
            met += node is not None and State[state_name] in node.states
        for a, relation, b in goal.edges:
            met += self._has(a, Relation[relation], b)
        for a, relation, b in goal.absent_edges:
            met += not self._has(a, Relation[relation], b)
        met += match_actions(goal.actions, self.executed)
        return met, goal.size

    def _steca_progress(self, goal: StecaGoal) -> tuple[int, int]:
        met = 0
        for node_id, states in goal.node_states:
            node = self.state.get_node(node_id)
            met += node is not None and {s.name for s in node.states} == states
        for a, relation, b in goal.absent_edges:
            met += not self._has_named(a, relation, b)
        for a, relation, b in goal.edges:
            met += self._has_named(a, relation, b)
        return met, goal.size

    def _has_named(self, a: int, relation: str, b: int) -> bool:
        """An edge given by its relation's name; a name the simulator does not know is never an edge."""
        return relation in Relation.__members__ and self._has(a, Relation[relation], b)

    def success(self) -> bool:
        met, total = self.goal_progress()
        return total > 0 and met == total

    def snapshot(self) -> tuple:
        """A hashable copy of the whole simulator state (node states and edges), for tests and checks."""
        nodes = tuple(
            sorted((n.id, n.class_name, tuple(sorted(s.name for s in n.states))) for n in self.state.get_nodes())
        )
        edges = tuple(sorted((e["from_id"], e["relation_type"], e["to_id"]) for e in self.state.to_dict()["edges"]))
        data = tuple(
            sorted(
                (repr(key), getattr(value[0], "id", None), getattr(value[1], "name", None))
                for key, value in self.state.executor_data.items()
            )
        )
        return nodes, edges, data


def gold_text_actions(program: VHProgram) -> list[str]:
    """The gold program as text actions: each line's template with its class names."""
    return [render_action(step.action, [name for name, _ in step.args]) for step in program.steps]
