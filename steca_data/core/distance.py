"""Trajectory deviation distance: normalised dynamic time warping over action sequences.

d(x, y) = DTW(x, y) / sqrt(n_x^2 + n_y^2), with a per-step distance in [0, 1]. Any monotone warping path
needs at least max(n_x, n_y) cells, so DTW <= max(n_x, n_y) <= sqrt(n_x^2 + n_y^2) and d stays in [0, 1].
STeCa turns it into reward weights: r_c = 1 + eta*d, r_s = 1 + eta*d, r_e = 1 - eta*d.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

StepDistance = Callable[[str, str], float]


def exact_distance(a: str, b: str) -> float:
    return 0.0 if a.strip() == b.strip() else 1.0


def edit_distance(a: str, b: str) -> float:
    """Levenshtein distance over characters divided by the longer length (0 for two empty strings)."""
    a, b = a.strip(), b.strip()
    if a == b:
        return 0.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] / max(len(a), len(b))


class EmbeddingDistance:
    """Cosine distance (1 - cos) / 2 between sentence embeddings of a local encoder, mapped to [0, 1].

    ``model_path`` is any local Hugging Face encoder or causal LM; embeddings are the mean of the last
    hidden states. Embeddings are memoised: action vocabularies are small.
    """

    def __init__(self, model_path: str):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModel.from_pretrained(model_path).eval()
        self._embed = lru_cache(maxsize=65536)(self._embed_uncached)

    def _embed_uncached(self, text: str):
        torch = self._torch
        with torch.no_grad():
            enc = self.tokenizer(text.strip() or " ", return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state[0]
            vec = hidden.mean(dim=0)
            return vec / vec.norm().clamp_min(1e-12)

    def __call__(self, a: str, b: str) -> float:
        if a.strip() == b.strip():
            return 0.0
        cos = float(self._embed(a) @ self._embed(b))
        return min(1.0, max(0.0, (1.0 - cos) / 2.0))


def step_distance(kind: str, embedding_model: str | None = None) -> StepDistance:
    if kind == "exact":
        return exact_distance
    if kind == "edit":
        return edit_distance
    if kind == "embedding":
        if not embedding_model:
            raise ValueError("reward.embedding_model is required for distance 'embedding'")
        return EmbeddingDistance(embedding_model)
    raise ValueError(f"unknown step distance {kind!r}")


def dtw(x: Sequence[str], y: Sequence[str], dist: StepDistance) -> float:
    """Classic DTW cost with steps (i-1, j), (i, j-1), (i-1, j-1)."""
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return float(max(n, m))
    inf = math.inf
    prev = [inf] * (m + 1)
    prev[0] = 0.0
    for i in range(1, n + 1):
        cur = [inf] * (m + 1)
        for j in range(1, m + 1):
            cur[j] = dist(x[i - 1], y[j - 1]) + min(prev[j], cur[j - 1], prev[j - 1])
        prev = cur
    return prev[m]


def ndtw(x: Sequence[str], y: Sequence[str], dist: StepDistance = exact_distance) -> float:
    """Normalised DTW in [0, 1]; 0 for identical sequences, 0 for two empty ones."""
    if not x and not y:
        return 0.0
    return dtw(x, y, dist) / math.sqrt(len(x) ** 2 + len(y) ** 2)
