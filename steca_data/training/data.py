"""Training data: built rows → history windows → token ids, a per-token loss mask and a per-example weight.

Works on any HF dataset whose rows carry ``messages`` (role, content, loss) and ``reward_weight``. Windows
come from ``steca_data.prompts.training_windows``, the same function inference prompts go through, and
tokens are located through the tokenizer's own chat template, so a real checkpoint trains on exactly the
format it is prompted with.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from steca_data.core.prompts import training_windows
from steca_data.core.schemas import ChatMessage


@dataclass
class Example:
    input_ids: list[int]
    loss_mask: list[int]  # 1 on tokens of loss-bearing assistant turns (content + end of turn)
    weight: float
    source: str  # row id, for debugging


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode_window(tokenizer, messages: list[ChatMessage]) -> tuple[list[int], list[int]]:
    """Token ids of the rendered window and a mask over the spans of assistant turns that bear loss.

    Spans are found as character ranges (prompt-with-generation-prompt vs. prompt-with-the-turn) and
    mapped to tokens via offsets, so the text is tokenised once, exactly as at inference.
    """
    plain = [{"role": m.role, "content": m.content} for m in messages]
    full = _render(tokenizer, plain)
    spans = []
    for i, m in enumerate(messages):
        if m.role != "assistant" or not m.loss:
            continue
        before = _render(tokenizer, plain[:i], add_generation_prompt=True)
        upto = _render(tokenizer, plain[: i + 1])
        if not full.startswith(upto) or not upto.startswith(before):
            raise ValueError("the tokenizer's chat template is not prefix-stable; cannot locate assistant turns")
        spans.append((len(before), len(upto)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    mask = [0] * len(enc["input_ids"])
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(a <= start < b for a, b in spans):
            mask[t] = 1
    return list(enc["input_ids"]), mask


def rows_to_examples(rows, tokenizer, history: int | None, max_seq_len: int) -> tuple[list[Example], int]:
    """All windows of all rows; windows longer than ``max_seq_len`` are cut from the left (counted)."""
    examples, truncated = [], 0
    for row in rows:
        messages = [ChatMessage(**m) for m in row["messages"]]
        for window in training_windows(messages, history):
            ids, mask = encode_window(tokenizer, window)
            if len(ids) > max_seq_len:
                ids, mask, truncated = ids[-max_seq_len:], mask[-max_seq_len:], truncated + 1
            if any(mask):
                examples.append(Example(ids, mask, float(row.get("reward_weight", 1.0)), str(row.get("id", ""))))
    return examples, truncated


def load_rows(data_dir: Path, keys: list[str]) -> list[dict]:
    """Rows of the named datasets of a ``save_to_disk`` DatasetDict (or a single Dataset)."""
    from datasets import Dataset, DatasetDict, load_from_disk

    if not Path(data_dir).exists():
        raise FileNotFoundError(f"no dataset at {data_dir}: run `steca-data build` first")
    data = load_from_disk(str(data_dir))
    if isinstance(data, Dataset):
        return list(data)
    assert isinstance(data, DatasetDict)
    missing = [k for k in keys if k not in data]
    if missing:
        raise KeyError(f"{data_dir} has no dataset {', '.join(missing)} (has: {', '.join(data)})")
    return [row for k in keys for row in data[k]]


def make_batches(examples: list[Example], batch_tokens: int, seed: int) -> list[list[int]]:
    """Shuffled micro-batches of example indices, each at most ``batch_tokens`` padded tokens.

    Examples are bucketed by length (so little padding is wasted) and the buckets' order is shuffled
    with ``seed``; the same seed gives the same batches, which is what makes resume exact.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    # sort within chunks of 64 by length: most of the padding saving, most of the randomness kept
    chunks = [sorted(order[i : i + 64], key=lambda j: len(examples[j].input_ids)) for i in range(0, len(order), 64)]
    batches, current, longest = [], [], 0
    for j in (j for chunk in chunks for j in chunk):
        n = len(examples[j].input_ids)
        if current and max(longest, n) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(j)
        longest = max(longest, n)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, loss_mask (float) and weights."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.float32)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        attn[i, :n] = 1
        mask[i, :n] = torch.tensor(e.loss_mask, dtype=torch.float32)
    weights = torch.tensor([e.weight for e in examples], dtype=torch.float32)
    return ids, attn, mask, weights
