"""STeP's data and its ``step`` export format: self-reflected trajectories with partial masking, from Dc.

A self-reflected trajectory is the history, the erroneous step (with what the environment answered),
then a reflection that notices the error and the corrected step, then the rest of the expert
trajectory. Partial masking: no loss on the history nor on the erroneous step, loss on the reflected
step and everything the agent says after it. Each message says which part it is, so any trainer can
build its own mask; ``prompt`` / ``completion`` is the same split in TRL's layout.
"""

from __future__ import annotations

from datasets import Features, List, Value

from ..build_dir import BuildDir
from ..bundle import MESSAGES, ROW_ID, Bundle, Split, columns
from ..chat import split_at_loss
from .base import MethodData

NAME = "step"  # the method and its export format

SEGMENTS = ("system", "task", "history", "error", "reflection", "continuation")

FEATURES = Features(
    {
        **ROW_ID,
        "messages": List(
            {"role": Value("string"), "content": Value("string"), "loss": Value("bool"), "segment": Value("string")}
        ),
        "prompt": MESSAGES,
        "completion": MESSAGES,
        **columns("string", "erroneous_action", "reflection", "corrected_action"),
        **columns("float64", "reward_weight"),
    }
)

USAGE = """\
from datasets import load_from_disk

rows = load_from_disk("OUT/dataset")["train"]
row = rows[0]
mask = [m["loss"] for m in row["messages"]]  # partial masking: the erroneous step has no loss
"""


def _segments(messages: list[dict], t: int) -> list[str]:
    """The part of the trajectory each message of a Dc row belongs to; its deviated step is assistant turn t.

    Assistant turns 1..t-1 are the history, turn t the erroneous step, turn t+1 the reflected step, the
    rest the expert continuation; an observation belongs to the step it answers.
    """
    out, turn = [], 0
    for i, m in enumerate(messages):
        if m["role"] == "system":
            out.append("system")
            continue
        if m["role"] == "user" and turn == 0:
            out.append("task" if i <= 1 else "history")
            continue
        turn += m["role"] == "assistant"
        if turn < t:
            out.append("history")
        elif turn == t:
            out.append("error")
        elif turn == t + 1:
            out.append("reflection")
        else:
            out.append("continuation")
    return out


def export(build: BuildDir) -> Bundle:
    bundle = Bundle(
        format=NAME,
        title="STeP-style self-reflected trajectories (partial masking)",
        consumer="STeP-style training with partial masking",
        usage=USAGE,
    )
    bundle.splits["train"] = Split(step_rows(build, bundle), FEATURES)
    bundle.contents = CONTENTS
    bundle.notes = [
        "Built from the Dc rows as they are: the erroneous step is the base agent's first deviated proposal, the "
        "reflection comes from the build's reflector, the continuation is the expert's.",
    ]
    return bundle


def step_rows(build: BuildDir, bundle: Bundle | None = None) -> list[dict]:
    """One self-reflected trajectory per Dc row, sorted by id: the export's rows and what STeP trains on."""
    rows = []
    for row in build.rows.get("dc", []):
        t = row["provenance"]["step"]
        messages = row["messages"]
        try:
            prompt, completion = split_at_loss(messages)
        except ValueError as exc:
            if bundle is not None:
                bundle.skip(f"dc: {exc}")
            continue
        rows.append(
            {
                "id": row["id"],
                "task_id": row["provenance"]["task_id"],
                "step": t,
                "messages": [
                    {"role": m["role"], "content": m["content"], "loss": bool(m.get("loss")), "segment": s}
                    for m, s in zip(messages, _segments(messages, t), strict=True)
                ],
                "prompt": prompt,
                "completion": completion,
                "erroneous_action": row["deviated_action"],
                "reflection": row["reflection"],
                "corrected_action": row["expert_action"],
                "reward_weight": row["reward_weight"],
            }
        )
    return rows


CONTENTS = [
    "split `train`: one self-reflected trajectory per Dc row of the build, sorted by `id`",
    "`messages`: role, content, `loss` (partial masking: true only on the reflected step and the assistant "
    "turns after it) and `segment` (" + " | ".join(SEGMENTS) + "); observations never bear loss",
    "`prompt` / `completion`: the same conversation split where the loss starts (TRL's prompt-completion layout)",
    "`erroneous_action`, `reflection`, `corrected_action`: the deviated action, the reflective thought and "
    "the expert action that replaces it; `step` = the 1-based position of the erroneous step",
    "`reward_weight`: the build's r_c",
]

DATA = MethodData(method=NAME, rows=step_rows, format=(NAME, export))
