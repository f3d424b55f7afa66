"""``trl-sft``: the build's rows as TRL SFTTrainer datasets, loss turns and reward weights kept.

TRL (1.x) has no per-turn loss mask and no per-example weight. The closest faithful form is the
conversational *prompt-completion* layout: the prompt is every turn before the first loss-bearing
assistant turn (Dc: the history, the deviated step and what the environment answered; Ds: the shared
expert prefix), the completion is the rest. SFTTrainer then trains on the completion only; with
``assistant_only_loss=True`` the observations inside it are masked too, which is exactly the rows'
per-turn ``loss`` flags (every steca row's loss turns form a suffix; ``chat.split_at_loss`` checks it).
"""

from __future__ import annotations

from datasets import Features, Value

from .build_dir import BuildDir
from .bundle import MESSAGES, Bundle, Split
from .chat import plain, split_at_loss

FEATURES = Features(
    {
        "id": Value("string"),
        "dataset": Value("string"),
        "task_id": Value("string"),
        "prompt": MESSAGES,
        "completion": MESSAGES,
        "messages": MESSAGES,
        "reward_weight": Value("float64"),
    }
)

USAGE = """\
from datasets import concatenate_datasets, load_from_disk
from trl import SFTConfig, SFTTrainer

dd = load_from_disk("OUT/dataset")
train = concatenate_datasets([dd[name] for name in ("dc", "de", "ds") if name in dd])  # STeCa's mix
trainer = SFTTrainer(model, args=SFTConfig(assistant_only_loss=True), train_dataset=train, processing_class=tok)
# reward_weight is not read by TRL: weight the per-example loss yourself (or train with steca-train)
"""


def export(build: BuildDir) -> Bundle:
    bundle = Bundle(format="trl-sft", title="TRL SFT datasets", consumer="TRL's SFTTrainer", usage=USAGE)
    for name, rows in build.rows.items():
        out = []
        for row in rows:
            try:
                prompt, completion = split_at_loss(row["messages"])
            except ValueError as exc:
                bundle.skip(f"{name}: {exc}")
                continue
            out.append(
                {
                    "id": row["id"],
                    "dataset": name,
                    "task_id": row["provenance"]["task_id"],
                    "prompt": prompt,
                    "completion": completion,
                    "messages": plain(row["messages"]),
                    "reward_weight": row["reward_weight"],
                }
            )
        bundle.splits[name] = Split(out, FEATURES)
    bundle.contents = [
        "one split per dataset of the build (" + ", ".join(build.rows) + "), rows sorted by `id` (the build's row id)",
        "`prompt` / `completion`: conversational prompt-completion (role/content); the completion starts at the "
        "first assistant turn that bears loss in the build",
        "`messages`: the whole conversation (prompt + completion), role/content",
        "`reward_weight`: the build's per-example weight (r_c for dc, r_e for de, r_s for ds, 1 for expert)",
        "`dataset`, `task_id`: where the row comes from",
    ]
    bundle.notes = [
        "TRL's SFTTrainer has no per-turn loss mask and no per-example weight, so the build's per-message `loss` "
        "flags are expressed as the prompt/completion split: SFTTrainer trains on the completion only "
        "(prompt-completion data turns `completion_only_loss` on). For Dc this keeps the deviated step and its "
        "observation as context without loss, as in the build.",
        "Pass `assistant_only_loss=True` (a chat template with `{% generation %}` markers) to also mask the "
        "observations inside the completion: loss then falls on exactly the build's loss-bearing turns.",
        "`messages` alone (SFTTrainer's language-modeling layout) would put loss on every assistant turn, the "
        "deviated step of a Dc row included: use it for inspection or other trainers, not for Dc/Ds with TRL.",
        "`reward_weight` is carried as a column; TRL ignores it.",
    ]
    return bundle
