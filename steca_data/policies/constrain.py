"""Constrained actions: the thought runs free, the ``Action:`` span must spell an admissible action.

A token trie over the admissible actions (each followed by end-of-turn) drives transformers'
``prefix_allowed_tokens_fn``. Tiny models trained on one object pool write object names memorised from
it on unseen tasks; restricting the action span to what the environment accepts fixes that (NOTES).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TRIGGER = "Action:"


@dataclass
class TrieNode:
    children: dict[int, TrieNode] = field(default_factory=dict)
    terminal: bool = False


def action_token_ids(tokenizer, action: str) -> list[int]:
    """Tokens of ``action`` as they follow ``Action:`` in a reply (leading space included).

    Tokenised in context and diffed, so tokenizers that merge across the boundary differently from a
    standalone encoding (SentencePiece's leading '▁') still get the right ids.
    """
    head = tokenizer.encode(TRIGGER, add_special_tokens=False)
    full = tokenizer.encode(f"{TRIGGER} {action}", add_special_tokens=False)
    if full[: len(head)] == head:
        return full[len(head) :]
    return tokenizer.encode(f" {action}", add_special_tokens=False)


def actions_token_ids(tokenizer, actions: list[str]) -> list[list[int]]:
    """``action_token_ids`` of many actions with one batched call to the tokenizer (ScienceWorld's 1,500
    actions a state: 1.5 s one by one, measured on this CPU)."""
    if not actions:
        return []
    head = tokenizer.encode(TRIGGER, add_special_tokens=False)
    fulls = tokenizer([f"{TRIGGER} {a}" for a in actions], add_special_tokens=False)["input_ids"]
    return [
        full[len(head) :] if full[: len(head)] == head else tokenizer.encode(f" {a}", add_special_tokens=False)
        for a, full in zip(actions, fulls, strict=True)
    ]


def build_trie(tokenizer, actions: list[str], end_id: int) -> TrieNode:
    root = TrieNode()
    for ids in actions_token_ids(tokenizer, actions):
        node = root
        for tok in [*ids, end_id]:
            node = node.children.setdefault(tok, TrieNode())
        node.terminal = True
    return root


class ActionConstraint:
    """``prefix_allowed_tokens_fn`` for one batch: free text until ``Action:``, then the row's trie.

    State is kept per row and advanced incrementally (one decode of the new tokens per step), so the
    cost stays linear in the reply length.
    """

    def __init__(self, tokenizer, admissible: list[list[str]], prompt_len: int, end_id: int, vocab: int):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.end_id = end_id
        self.all_tokens = list(range(vocab))
        self.tries = [build_trie(tokenizer, acts, end_id) if acts else None for acts in admissible]
        self.state: list[dict] = [{"mode": "free", "seen": 0, "node": None, "pos": 0} for _ in admissible]

    def __call__(self, batch_id: int, sent) -> list[int]:
        trie, st = self.tries[batch_id], self.state[batch_id]
        if trie is None or st["mode"] == "off":
            return self.all_tokens
        gen = sent[self.prompt_len :].tolist()
        if st["mode"] == "free":
            if len(gen) > st["seen"]:
                # decode the whole reply so characters split over several tokens come out right
                text = self.tokenizer.decode(gen, skip_special_tokens=True)
                st["seen"] = len(gen)
                if text.endswith(TRIGGER):
                    st.update(mode="action", node=trie, pos=len(gen))
            if st["mode"] == "free":
                return self.all_tokens
        node = st["node"]
        for tok in gen[st["pos"] :]:
            node = node.children.get(tok) if node is not None else None
        if node is None:  # fell off the trie (only if another processor forced a token): stop constraining
            st["mode"] = "off"
            return self.all_tokens
        st["node"], st["pos"] = node, len(gen)
        return list(node.children) or [self.end_id]


class ActionMaskProcessor:
    """A logits processor around ``ActionConstraint`` that touches only the rows inside an action span.

    transformers' ``prefix_allowed_tokens_fn`` builds a full-vocabulary mask for every row at every step,
    also for rows still writing their free thought; on the CPU that was 13 % of generation time.
    """

    def __init__(self, constraint: ActionConstraint):
        self.constraint = constraint

    def __call__(self, input_ids, scores):
        for row in range(input_ids.shape[0]):
            allowed = self.constraint(row, input_ids[row])
            if allowed is self.constraint.all_tokens:
                continue
            keep = scores[row, allowed].clone()
            scores[row] = float("-inf")
            scores[row, allowed] = keep
        return scores
