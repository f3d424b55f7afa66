"""One weighted-likelihood run from rows: tokenize into windows, plan the steps, train with a progress bar.

The one orchestration of ``trainer.train`` that the build's warm-up, ``steca-train sft`` and every weighted
method of ``steca-train`` share, so a warm-up and a method differ only in their rows and settings.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from steca_data.recipe.agent import SFTSpec
from steca_data.training.trainer import TrainResult


@dataclass
class Fit:
    result: TrainResult
    windows: int
    tokens: int
    truncated: int  # windows cut to spec.max_seq_len
    planned_steps: int


def fit(
    spec: SFTSpec,
    init: str | Path,
    rows: list[dict],
    out: Path,
    history: int | None,
    reporter,
    label: str,
    resume: bool = False,
    over_budget: str = "stop",
) -> Fit:
    """Train ``init`` on ``rows`` (their ``loss`` flags and ``reward_weight``) into ``out``.

    Raises ``ValueError`` when no row has a loss-bearing assistant turn (nothing to learn)."""
    from transformers import AutoTokenizer

    from steca_data.training.data import rows_to_examples
    from steca_data.training.distributed import is_main_process
    from steca_data.training.trainer import plan_steps, train

    tokenizer = AutoTokenizer.from_pretrained(str(init))
    examples, truncated = rows_to_examples(rows, tokenizer, history, spec.max_seq_len)
    if not examples:
        raise ValueError("no trainable windows: no row has an assistant turn that bears loss")
    n_steps = plan_steps(spec, examples)
    # under torchrun only rank 0 reports
    track = reporter.track(label, n_steps, "steps") if is_main_process() else nullcontext(lambda n=1, more=0: None)
    with track as advance:
        done = [0]

        def progress(step: int, total: int, loss: float) -> None:
            advance(step - done[0])
            done[0] = step

        result = train(
            spec,
            init,
            examples,
            out,
            tokenizer,
            resume=resume,
            progress=progress,
            pad_id=tokenizer.pad_token_id,
            over_budget=over_budget,
        )
    return Fit(result, len(examples), sum(len(e.input_ids) for e in examples), truncated, n_steps)
