"""Token ids of chat prompts, reusing the ids of the text that earlier prompts shared.

An episode's prompts repeat most of their text: the system prompt, the task, the last observations. A fast
(Rust) tokenizer splits a text at its added tokens (``<|user|>``, ``<|end|>``, ...) before anything else
and tokenizes each piece on its own, so a prompt's ids are its pieces' ids in order. Remembering each
piece's ids turns ~2 ms of tokenization per request (the GIL held all along, the engine's driver waiting)
into dictionary look-ups.

Only where that split is all there is: added tokens that strip no neighbouring spaces, match anywhere and are
not normalized, and a post-processor that adds nothing. Otherwise every prompt goes through the tokenizer.
"""

from __future__ import annotations

import re

MAX_PIECES = 1 << 16  # remembered pieces; the map is emptied when full (pieces are short, look-ups cheap)


def _splits_only_at_added_tokens(tokenizer, added: list) -> bool:
    plain = all(not (t.lstrip or t.rstrip or t.single_word or t.normalized) for t in added)
    adds_nothing = tokenizer.encode("a b").ids == tokenizer.encode("a b", add_special_tokens=False).ids
    return bool(added) and plain and adds_nothing


class PromptTokenizer:
    """``encode(text)`` = ``tokenizer.encode(text, add_special_tokens=True).ids``, from remembered pieces."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer  # a ``tokenizers.Tokenizer`` (a fast HF tokenizer's backend)
        decoder = tokenizer.get_added_tokens_decoder()
        self.reuses = _splits_only_at_added_tokens(tokenizer, list(decoder.values()))
        self._added_ids = {t.content: i for i, t in decoder.items()}
        # leftmost, longest first: how the tokenizer matches added tokens
        contents = sorted(self._added_ids, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, contents)) + ")")
        self._pieces: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        if not self.reuses:
            return self.tokenizer.encode(text, add_special_tokens=True).ids
        ids: list[int] = []
        for piece in self._split.split(text):
            if not piece:
                continue
            token = self._added_ids.get(piece)
            if token is not None:
                ids.append(token)
                continue
            known = self._pieces.get(piece)
            if known is None:
                if len(self._pieces) >= MAX_PIECES:
                    self._pieces.clear()
                known = self._pieces[piece] = self.tokenizer.encode(piece, add_special_tokens=False).ids
            ids.extend(known)
        return ids
