"""The weighted-likelihood trainer as the methods use it (``steca_train.methods.base.WeightedMethod``).

Every weighted method is the SFT trainer (``trainer.train``) run on a choice of rows: the rows' ``loss`` flags
say which assistant turns are learnt (Dc: the reflected step and the expert continuation, never the deviated
action; Ds: the expert continuation; De: the whole success) and their ``reward_weight`` is the per-example
weight. Methods change only the rows and whether weights count, so a difference in results is a difference in
data, not in training code.
"""

from __future__ import annotations

from pathlib import Path

from steca_data.recipe.reinforce import ReinforceSpec


def objective_rows(rows: list[dict], weighted: bool) -> list[dict]:
    """Rows as the objective sees them: reward weights kept, or all set to 1 (plain SFT on the same data)."""
    if weighted:
        return rows
    return [{**row, "reward_weight": 1.0} for row in rows]


def train_objective(spec: ReinforceSpec, init: Path, rows: list[dict], out: Path, history: int | None, reporter, label):
    """Train ``init`` on ``rows`` with the SFT trainer (``training.fit``); returns the ``TrainResult``."""
    from steca_data.training.fit import fit

    return fit(spec, init, rows, out, history, reporter, label).result


def dataset_nll(model_dir: Path, rows_by_set: dict[str, list[dict]], history: int | None, max_rows: int = 100) -> dict:
    """Mean per-token NLL of a model on each dataset's loss-bearing turns (unweighted; first ``max_rows`` rows).

    Read against the training loss: a set the base agent already finds easy teaches little, a set it finds
    hard (e.g. Dc's reflection thoughts, text it never saw in warm-up) dominates the gradient.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from steca_data.training.data import collate, rows_to_examples
    from steca_data.training.trainer import weighted_nll

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    out = {}
    for name, rows in rows_by_set.items():
        examples, _ = rows_to_examples(objective_rows(rows[:max_rows], False), tokenizer, history, 768)
        total, count = 0.0, 0
        for i in range(0, len(examples), 8):
            batch = examples[i : i + 8]
            ids, attn, mask, weights = collate(batch, tokenizer.pad_token_id)
            n = float(mask[:, 1:].sum())
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=attn).logits
            total += weighted_nll(logits, ids, mask, weights, 1.0).item()
            count += n
        out[name] = round(total / max(count, 1.0), 4)
    return out
