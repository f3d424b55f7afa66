"""STeCa's reinforced training and the baselines that share its trainer.

    L(θ) = E_Dc[r_c · log π(e_c | e_{1:t-1})] + E_Ds[r_s · log π(e_{t:m} | e_{1:t-1})] + E_De[r_e · log π(ẽ | u)]

Every method here is the SFT trainer (``trainer.train``) run from the base agent on a choice of rows:
the rows' ``loss`` flags say which assistant turns are learnt (Dc: the reflected step and the expert
continuation, never the deviated action; Ds: the expert continuation; De: the whole success) and their
``reward_weight`` is the per-example weight. Baselines change only the rows and whether weights count,
so a difference in results is a difference in data, not in training code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steca_data.recipe_reinforce import ReinforceSpec


@dataclass(frozen=True)
class Objective:
    """Which built datasets a method trains on, and whether rows keep their reward weights."""

    datasets: tuple[str, ...]
    weighted: bool


# what each trained method learns from (the base agent "sft" is not trained again; "steca-dpo" adds DPO on top
# of "steca-sft")
OBJECTIVES: dict[str, Objective] = {
    "steca": Objective(("dc", "de", "ds"), True),
    "steca-sft": Objective(("dc", "de", "ds"), False),
    "rft": Objective(("expert", "de"), False),
}


def objective_rows(rows: list[dict], weighted: bool) -> list[dict]:
    """Rows as the objective sees them: reward weights kept, or all set to 1 (plain SFT on the same data)."""
    if weighted:
        return rows
    return [{**row, "reward_weight": 1.0} for row in rows]


def load_objective(data_dir: Path, objective: Objective) -> list[dict]:
    from .data import load_rows

    return objective_rows(load_rows(data_dir, list(objective.datasets)), objective.weighted)


def train_objective(
    spec: ReinforceSpec,
    init: Path,
    rows: list[dict],
    out: Path,
    history: int | None,
    progress=None,
):
    """Train ``init`` on ``rows`` with the SFT trainer; returns the ``TrainResult``."""
    from transformers import AutoTokenizer

    from .data import rows_to_examples
    from .trainer import train

    tokenizer = AutoTokenizer.from_pretrained(str(init))
    examples, _ = rows_to_examples(rows, tokenizer, history, spec.max_seq_len)
    if not examples:
        raise ValueError("no trainable windows: no row has an assistant turn that bears loss")
    return train(spec, init, examples, out, tokenizer, progress=progress, pad_id=tokenizer.pad_token_id)


def weight_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per dataset: rows, mean / min / max reward weight (the analysis the README table needs)."""
    by: dict[str, list[float]] = {}
    for row in rows:
        by.setdefault(row.get("dataset", "?"), []).append(float(row["reward_weight"]))
    return {
        name: {"rows": len(w), "mean": sum(w) / len(w), "min": min(w), "max": max(w)} for name, w in sorted(by.items())
    }
