"""The constrained-action pattern both vLLM paths use (in-process and served): a free but bounded thought,
then exactly one admissible action, so every reply reaches its ``Action:`` line within ``max_new_tokens``.

Small sets are one alternation of the actions. Large sets (ScienceWorld: every template x every visible
object, 100-2,000+ actions a state) are factored into a word graph first: actions that share a beginning
share it in the pattern, and what follows different beginnings is written once when it is the same set
(``move (cup|flower pot|...) to (cup|flower pot|...)``), so the pattern grows with templates + objects
rather than with their product. Both forms accept exactly the same strings.
"""

from __future__ import annotations

import re
from functools import lru_cache

GRAMMAR_OVERHEAD_TOKENS = 8  # "Thought: " + "\nAction: " + end of turn, generously
ALTERNATION_LIMIT = 256  # up to this many actions: the plain alternation (the form every cache has seen)


def action_regex(admissible: list[str], thought_chars: int) -> str:
    """``Thought: <at most thought_chars characters>\\nAction: <one admissible action>`` as a regex.

    A token holds at least one character, so a budget in characters is also one in tokens: callers give
    ``max_new_tokens`` minus the longest action and the fixed text, and the Action line is always reached.
    Faster to enforce than the token-bounded grammar (measured 41 vs 28 requests/s at batch 48 on this CPU).
    """
    if len(admissible) > ALTERNATION_LIMIT:
        choices = _factored(tuple(admissible))  # 20-35 ms for 1,500 actions; states recur across rollouts
    else:
        choices = "|".join(re.escape(a) for a in sorted(admissible, key=len, reverse=True))
    return rf"Thought: [^\n]{{1,{max(1, thought_chars)}}}\nAction: ({choices})"


@lru_cache(maxsize=1024)
def _factored(actions: tuple[str, ...]) -> str:
    return factored_alternation(list(actions))


def factored_alternation(actions: list[str]) -> str:
    """A regex (without the outer group) accepting exactly ``actions``, factored over words.

    The actions' words form a trie; equal subtrees are merged (a minimal word graph), and a node's edges
    that lead to the same next node are written as one group of words followed by that node's pattern.
    """
    trie: dict = {}
    for action in actions:
        node = trie
        for word in action.split(" "):
            node = node.setdefault(word, {})
        node[""] = {}  # end of an action
    ids: dict[tuple, int] = {}
    patterns: dict[int, str] = {}

    def visit(node: dict) -> int:
        """Intern the subtree: equal subtrees get one id and one pattern."""
        edges = tuple(sorted((w, visit(child)) for w, child in node.items() if w))
        key = ("" in node, edges)
        if key not in ids:
            ids[key] = len(ids)
            patterns[ids[key]] = _pattern(*key)
        return ids[key]

    def _pattern(terminal: bool, edges: tuple[tuple[str, int], ...]) -> str:
        """What may follow a node, space first (empty when the node only ends an action)."""
        by_next: dict[int, list[str]] = {}
        for word, nxt in edges:
            by_next.setdefault(nxt, []).append(re.escape(word))
        parts = []
        for nxt, words in sorted(by_next.items(), key=lambda item: min(item[1])):
            head = words[0] if len(words) == 1 else f"({'|'.join(sorted(words, key=len, reverse=True))})"
            parts.append(head + patterns[nxt])
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 else f"({'|'.join(parts)})"
        return f"( {body})?" if terminal else f" {body}"

    root = visit(trie)
    return patterns[root][1:]  # the root has no end mark and its pattern starts with a space
