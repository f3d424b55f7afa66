"""ALFWorld's hand-coded expert, fixed and made deterministic.

Two problems with the stock expert under alfworld 0.4:

* the game now says ``move X to Y`` where it used to say ``put X in/on Y``, but the expert's state
  tracking still looks for "put", so it never empties its hands after placing an object and
  pick_two_obj_and_place games loop until the step cap;
* it breaks ties with the global ``random`` module, so two runs of the same game can differ.

We keep the expert's policies as they are and fix both at their edges: the last action is shown to the
state tracker in the old wording, and ``random`` inside the expert module is a per-thread generator that
we seed for each episode.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

DEFAULT_STEP_CAP = 200  # what ALFWorld's AlfredExpert wrapper gives its hand-coded expert


class _ThreadRandom:
    """Stands in for the ``random`` module inside the expert: a seeded generator per thread when set."""

    def __init__(self) -> None:
        self._local = threading.local()

    def use(self, rng: random.Random | None) -> None:
        self._local.rng = rng

    def __getattr__(self, name: str):
        rng = getattr(self._local, "rng", None)
        return getattr(rng if rng is not None else random, name)


_RANDOM = _ThreadRandom()


def _patch_expert_random() -> None:
    import alfworld.agents.expert.handcoded_expert as module

    if module.random is not _RANDOM:
        module.random = _RANDOM


def _as_put(action: str) -> str:
    """'move apple 1 to fridge 1' -> 'put apple 1 in/on fridge 1' (the wording the expert tracks)."""
    if action.startswith("move ") and " to " in action:
        obj, recep = action[len("move ") :].split(" to ", 1)
        return f"put {obj} in/on {recep}"
    return action


@dataclass
class ExpertRun:
    actions: list[str] = field(default_factory=list)
    won: bool = False
    error: str = ""


def make_policy(traj_data: dict, max_steps: int, fixed: bool = True):
    """The expert's task policy for a game, with the put/move fix applied to this instance only
    (``fixed=False``: the stock behaviour, kept to show the bug in tests)."""
    import alfworld.gen.constants as constants
    from alfworld.agents.expert import HandCodedTWAgent

    params = {**traj_data["pddl_params"], "task_type": traj_data["task_type"]}
    params = {k: (v.lower() if v in constants.OBJECTS else v) for k, v in params.items()}
    agent = HandCodedTWAgent(max_steps=max_steps)
    policy = agent.get_task_policy(params)(params, max_steps=max_steps)
    if fixed:
        track = policy.update_state_tracking
        policy.update_state_tracking = lambda game_state, last_action: track(game_state, _as_put(last_action))
    return policy


def next_action(policy, state, last_action: str) -> str:
    """One expert decision, as ALFWorld's HandCodedAgent.act + AlfredExpert make it."""
    action = policy.act(state, last_action)
    admissible = state["admissible_commands"]
    if action == last_action or (last_action == "look" and action not in admissible):
        action = _RANDOM.choice(admissible)
    return action if action in admissible else "look"


def run_expert(env, traj_data: dict, seed: int = 0, max_steps: int = DEFAULT_STEP_CAP, fixed: bool = True) -> ExpertRun:
    """Play the (loaded) game with the fixed expert from a fresh reset until won or the step cap."""
    from alfworld.agents.expert.handcoded_expert import HandCodedAgentFailed, HandCodedAgentTimeout

    _patch_expert_random()
    run = ExpertRun()
    _RANDOM.use(random.Random(seed))
    try:
        state = env.reset()
        policy = make_policy(traj_data, max_steps, fixed)
        policy.observe(state.feedback)
        last = ""
        while len(run.actions) < max_steps:
            action = next_action(policy, state, last)
            state, _, _ = env.step(action)
            run.actions.append(action)
            last = action
            if state["won"]:
                run.won = True
                break
        else:
            run.error = f"step cap {max_steps} reached"
    except (HandCodedAgentTimeout, HandCodedAgentFailed) as exc:
        run.error = type(exc).__name__
    finally:
        _RANDOM.use(None)
    return run
