"""Ground truth for the deviation rule: what an action really did, from a planner's remaining plan length.

h(s) is the length of the planner's shortest plan from state s (0 at the goal, None when no plan exists).
An action a from s leads to s'; it wasted ``h(s') + 1 - h(s)`` steps. Its label:

- progress  h(s') < h(s): it is on a shortest path (h drops by exactly one for an exact planner);
- detour    h(s') >= h(s): the goal is still reachable but farther (a no-op or an invalid action wastes one
            step, h unchanged; a move away wastes two or more);
- dead end  no plan from s' (the task can no longer be won).

The deviation rule is right to flag an action when it is a detour or a dead end (``is_bad``). The planner
knows where every object is, so an expert that has to search (open a drawer to look inside) takes detours
by this measure too: labels say what the action did, not whether it was a sensible guess.
"""

from __future__ import annotations

PROGRESS, DETOUR, DEAD_END = "progress", "detour", "dead_end"
LABELS = (PROGRESS, DETOUR, DEAD_END)


def plan_label(before: int | None, after: int | None) -> str | None:
    """The label of an action that took h from ``before`` to ``after``; None when the state before was already
    a dead end (nothing left to judge)."""
    if before is None:
        return None
    if after is None:
        return DEAD_END
    return PROGRESS if after < before else DETOUR


def is_bad(label: str | None) -> bool:
    """What the deviation rule should flag: a detour or a dead end."""
    return label in (DETOUR, DEAD_END)
