"""TextWorld's PDDL engine with the work that never changes inside a game done once.

Stock ``PddlEnv`` spends a reset translating the PDDL problem with Fast Downward twice (seconds on a real
floor plan) and a step re-parsing, with TatSu, the text template of every applicable action and deep-copying
grammar symbols together with the whole game state. Here:

* translations are cached per (domain, problem) and the second one (for the planner) is made only when a
  walkthrough is asked for;
* the parsed game logic is cached per grammar text;
* the text of each applicable command is cached per (action, arguments): ALFWorld's command templates
  only query static facts (``receptacleAtLocation``), so the text cannot change within a game;
* TatSu parses of grammar snippets and queries are memoised, and grammar symbols are copied without
  copying the game state they point to.

The last item patches ``textworld.envs.pddl.textgen`` but only changes behaviour on threads that are
inside one of our calls (a thread-local flag), so stock environments in the same process are untouched:
that is what lets the benchmark compare both in one run. Tests check transcripts are identical.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textworld.envs.pddl import PddlEnv

_TRANSLATE_LOCK = threading.Lock()  # fast_downward.pddl2sas rewrites sys.argv, sys.stdout and globals
_PARSE_LOCK = threading.RLock()  # the TatSu parsers are module-level objects
_FLAG = threading.local()


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


_TRANSLATIONS = _LRU(256)
_REPLAN_TRANSLATIONS = _LRU(64)
_LOGICS = _LRU(256)
_PARSED: dict[tuple[str, str], Any] = {}
_QUERIES: dict[str, Any] = {}


def clear_caches() -> None:
    """Forget every cached translation, logic, command text and parse (benchmarks measure cold starts)."""
    for lru in (_TRANSLATIONS, _REPLAN_TRANSLATIONS, _LOGICS, _GAMES, _COMMANDS):
        with lru.lock:
            lru.data.clear()
    _PARSED.clear()
    _QUERIES.clear()


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


@contextlib.contextmanager
def fast_grammar() -> Iterator[None]:
    """Enable the memoised grammar on this thread for the duration of the block."""
    previous = getattr(_FLAG, "on", False)
    _FLAG.on = True
    try:
        yield
    finally:
        _FLAG.on = previous


def _install_patches() -> None:
    """Wrap the textgen helpers once; the wrappers defer to the originals unless the flag is set."""
    import textworld.envs.pddl.textgen as textgen
    from textworld.logic import Rule

    if getattr(textgen, "_steca_patched", False):
        return
    original_parse = textgen._parse_and_convert
    original_query = Rule.parse_conjunctive_query.__func__
    original_copy = textgen.Symbol.copy

    def parse_and_convert(text, rule_name=None, **kwargs):
        if not getattr(_FLAG, "on", False) or kwargs:
            with _PARSE_LOCK:
                return original_parse(text, rule_name=rule_name, **kwargs)
        key = (text, rule_name)
        parsed = _PARSED.get(key)
        if parsed is None:
            with _PARSE_LOCK:
                parsed = _PARSED[key] = original_parse(text, rule_name=rule_name)
        return copy.deepcopy(parsed)

    def parse_conjunctive_query(cls, expr):
        if not getattr(_FLAG, "on", False):
            with _PARSE_LOCK:
                return original_query(cls, expr)
        rule = _QUERIES.get(expr)
        if rule is None:
            with _PARSE_LOCK:
                rule = _QUERIES[expr] = original_query(cls, expr)
        return rule

    def symbol_copy(self, context):
        if not getattr(_FLAG, "on", False):
            return original_copy(self, context)
        # Deep-copy the symbol tree but share the game state, fact list and entity table, exactly as
        # copy_context() shares them; copying them is what made the stock grammar slow.
        memo: dict[int, Any] = {}
        for ctx in (self.context, context):
            for key in ("state", "facts", "entity_infos"):
                if key in ctx:
                    memo[id(ctx[key])] = ctx[key]
        duplicate = copy.deepcopy(self, memo)
        duplicate.context = textgen.copy_context(context)
        return duplicate

    textgen._parse_and_convert = parse_and_convert
    Rule.parse_conjunctive_query = classmethod(parse_conjunctive_query)
    textgen.Symbol.copy = symbol_copy
    textgen._steca_patched = True


def translate(domain: str, problem: str, replan: bool = False):
    """Fast Downward translation of a problem, computed once per process (``replan``: the optimised one)."""
    import fast_downward

    cache = _REPLAN_TRANSLATIONS if replan else _TRANSLATIONS

    def make():
        with _TRANSLATE_LOCK:
            return fast_downward.pddl2sas(domain, problem, optimize=replan)

    return cache.get(_digest(domain, problem), make)


def game_logic(domain: str, grammar: str):
    from textworld.envs.pddl import logic as pddl_logic

    def make():
        with _PARSE_LOCK:
            return pddl_logic.GameLogic(domain=domain, grammar=grammar)

    return _LOGICS.get(_digest(domain, grammar), make)


def _make_state_class():
    import textworld
    from textworld.envs.pddl import logic as pddl_logic
    from textworld.logic import Proposition, Variable

    class CachedPddlState(pddl_logic.PddlState):
        """``PddlState`` built from a cached translation; the planner's translation is loaded on demand."""

        def __init__(self, downward_lib, domain: str, pddl_problem: str, logic):  # noqa: D107
            from collections import Counter, defaultdict

            import fast_downward

            self._facts = defaultdict(set)
            self._vars_by_name = {}
            self._vars_by_type = defaultdict(set)
            self._var_counts = Counter()
            self._logic = logic
            self.downward_lib = downward_lib
            self.pddl_problem = pddl_problem
            self._domain = domain
            self._replan_loaded = False
            self.task, self.sas = translate(domain, pddl_problem)
            self._actions = {a.name: a for a in self.task.actions}
            for type_ in self.task.types:
                with contextlib.suppress(ValueError):  # already known
                    self._logic.types.add(textworld.logic.Type(type_.name, type_.supertype_names))
            self.downward_lib.load_sas(self.sas.encode("utf-8"))
            self.name2type = {o.name: o.type_name for o in self.task.objects}
            facts = []
            pddl = fast_downward.translate.pddl
            for atom in self.task.init:  # same conversion as the stock PddlState
                if isinstance(atom, pddl.conditions.Atom) and atom.predicate != "=":
                    facts.append(Proposition(atom.predicate, [Variable(a, self.name2type[a]) for a in atom.args]))
                elif isinstance(atom, pddl.f_expression.Assign) and atom.fluent.symbol != "total-cost":
                    name = f"{atom.expression.value}"
                    if not str.isdigit(name):  # distance relations are discarded
                        facts.append(Proposition(name, [Variable(a, self.name2type[a]) for a in atom.fluent.args]))
            self.add_facts(facts)
            size = self.downward_lib.get_state_size()
            atoms = (pddl_logic.Atom * size)()
            self.downward_lib.get_state(atoms)
            self.add_facts([f for f in (a.get_fact(self.name2type) for a in atoms) if not f.is_negation])

        def replan(self, infos):
            if not self._replan_loaded:
                _, sas_replan = translate(self._domain, self.pddl_problem, replan=True)
                self.downward_lib.load_sas_replan(sas_replan.encode("utf-8"))
                self._replan_loaded = True
            return super().replan(infos)

    return CachedPddlState


_STATE_CLASS = None


def _state_class():
    global _STATE_CLASS
    if _STATE_CLASS is None:
        _STATE_CLASS = _make_state_class()
    return _STATE_CLASS


def _read_game(path: str) -> dict:
    p = Path(path)
    stat = p.stat()
    return _GAMES.get((str(p.resolve()), stat.st_mtime_ns, stat.st_size), lambda: json.loads(p.read_text()))


_GAMES = _LRU(512)
_COMMANDS = _LRU(512)


def demangle_names(entity_infos: dict) -> None:
    """Give entities ALFWorld's readable names ('apple 1'), as its AlfredDemangler wrapper does."""
    from alfworld.agents.utils.misc import Demangler

    demangler = Demangler(game_infos=entity_infos, shuffle=False)
    for info in entity_infos.values():
        info.name = demangler.demangle_alfred_name(info.id)


class CachedPddlEnv(PddlEnv):
    """``PddlEnv`` with the per-game work cached (see the module docstring)."""

    def load(self, filename: str) -> None:
        data = _read_game(filename)
        self._game_file = filename
        self._game_data = data
        self.walkthrough = data.get("walkthrough")
        self._domain = data["pddl_domain"]
        self._logic = game_logic(self._domain, data["grammar"])
        with fast_grammar():
            self._pddl_state = _state_class()(self.downward_lib, self._domain, data["pddl_problem"], self._logic)
        self._entity_infos = self._get_entity_infos()
        demangle_names(self._entity_infos)
        self._names = {k: info.name for k, info in self._entity_infos.items()}
        # Shared by every environment that loads this game, so replays never derive a command twice.
        self._commands = _COMMANDS.get(_digest(data["grammar"], data["pddl_problem"]), dict)

    def reset(self):
        self._pddl_state = _state_class()(self.downward_lib, self._domain, self._game_data["pddl_problem"], self._logic)
        with fast_grammar():
            return self._reset_text()

    def _reset_text(self):
        from textworld.core import GameState

        self.prev_state = None
        self.state = GameState()
        self._last_action = None
        self._moves = 0
        context = {
            "state": self._pddl_state,
            "facts": list(self._pddl_state.facts),
            "variables": {},
            "mapping": {},
            "entity_infos": self._entity_infos,
        }
        self.state.feedback = self._logic.grammar.derive("#intro#", context)
        self.state.raw = self.state.feedback
        self._gather_infos()
        if "walkthrough" in self.request_infos.extras:
            self.state["extra.walkthrough"] = self.walkthrough or self._pddl_state.replan(self._entity_infos)
        return self.state

    def step(self, command: str):
        with fast_grammar():
            return super().step(command)

    def remaining_plan(self) -> list[str] | None:
        """The planner's shortest plan from the current state: [] at the goal, None when no plan exists.

        ``PddlState.replan`` returns [] for both; the goal test tells them apart. Its search (Fast Downward's
        lazy best-first on g with unit costs, in the textworld build) is uniform-cost, so the length is the
        true remaining distance with full knowledge of where every object is."""
        state = self._pddl_state
        if state.check_goal():
            return []
        return state.replan(self._entity_infos) or None

    def _command(self, action) -> str:
        key = (action.name, tuple(sorted((ph.name, var.name) for ph, var in action.mapping.items())))
        text = self._commands.get(key)
        if text is None:
            context = {
                "state": self._pddl_state,
                "facts": list(self._pddl_state.facts),
                "variables": {ph.name: self._entity_infos[var.name] for ph, var in action.mapping.items()},
                "mapping": action.mapping,
                "entity_infos": self._entity_infos,
            }
            action.command_template = self._logic.grammar.derive(action.command_template, context)
            text = self._commands[key] = action.format_command(self._names)
        return text

    def _gather_infos(self):
        state, pddl = self.state, self._pddl_state
        state["command_templates"] = sorted({a.template for a in self._logic.actions.values()})
        state["won"] = pddl.check_goal()
        state["lost"] = False
        state["_entity_infos"] = dict(self._entity_infos)
        state["_facts"] = list(pddl.facts)
        if self.request_infos.facts:
            state["facts"] = list(map(self._get_human_readable_fact, state["_facts"]))
        state["last_action"] = None
        state["_last_action"] = self._last_action
        state["_valid_actions"] = list(pddl.all_applicable_actions())
        state["_valid_commands"] = [self._command(a) for a in state["_valid_actions"]]
        state["admissible_commands"] = sorted(set(state["_valid_commands"]))
        if self.request_infos.moves:
            state["moves"] = self._moves
        if self.request_infos.policy_commands:
            state["policy_commands"] = pddl.replan(self._entity_infos)


def make_env(facts: bool = True, walkthrough: bool = False):
    """A cached-engine ALFWorld environment: ``load(game_file)``, ``reset()``, ``step(command)``."""
    import textworld

    _install_patches()
    extras = ["walkthrough"] if walkthrough else []
    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=facts, extras=extras)
    return CachedPddlEnv(infos)


def make_stock_env(facts: bool = True, walkthrough: bool = False):
    """ALFWorld's own stack (PddlEnv + AlfredDemangler), for comparisons."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    extras = ["walkthrough"] if walkthrough else []
    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=facts, extras=extras)
    return AlfredDemangler(shuffle=False)(PddlEnv(infos))
