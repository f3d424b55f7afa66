"""Prompt token ids from remembered pieces equal the tokenizer's own ids, or the tokenizer is used whole."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer

from steca_data.policies.prompt_ids import PromptTokenizer


@pytest.fixture(scope="module")
def fast(tokenizer) -> Tokenizer:
    return tokenizer.backend_tokenizer


def _prompts(tokenizer, n: int, seed: int = 0) -> list[str]:
    """Chat prompts with repeats, edge spacing, unicode and text that looks like an added token."""
    rng = random.Random(seed)
    texts = ["Task: put the apple away.", "You see a fridge 1 and a table.", " lead space", "trail  ",
             "ünïcödé ✓\ttab", "\n\nnewlines\n", "<|use", "x<|end", "|>", "", "Thought: go\nAction: x"]  # fmt: skip
    prompts = []
    for _ in range(n):
        messages = [{"role": "system", "content": rng.choice(texts)}]
        for turn in range(rng.randint(1, 6)):
            role = "user" if turn % 2 == 0 else "assistant"
            messages.append({"role": role, "content": "".join(rng.choices(texts, k=rng.randint(1, 3)))})
        prompts.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return prompts + ["", "plain text, no added token", "<s><s><|user|><|end|>"]


def test_pieces_give_the_tokenizers_ids(tokenizer, fast):
    prompt_ids = PromptTokenizer(fast)
    assert prompt_ids.reuses, "the project's tokenizer splits only at its added tokens"
    prompts = _prompts(tokenizer, 300)
    for text in prompts + prompts:  # the second pass is served from remembered pieces
        assert prompt_ids.encode(text) == fast.encode(text, add_special_tokens=True).ids, text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda spec: spec["added_tokens"][2].update(lstrip=True), id="an added token strips spaces"),
        pytest.param(
            lambda spec: spec.update(post_processor={"type": "TemplateProcessing", "single": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}),
            id="the post-processor adds a BOS",
        ),
    ],
)  # fmt: skip
def test_tokenizers_that_do_more_than_split_are_used_whole(tokenizer, fast, change):
    spec = json.loads(fast.to_str())
    change(spec)
    other = Tokenizer.from_str(json.dumps(spec))
    prompt_ids = PromptTokenizer(other)
    assert not prompt_ids.reuses
    for text in _prompts(tokenizer, 50, seed=1):
        assert prompt_ids.encode(text) == other.encode(text, add_special_tokens=True).ids
