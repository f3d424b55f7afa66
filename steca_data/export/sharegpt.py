"""``sharegpt``: the JSON files the FastChat-based training scripts of ETO, IPR and STeCa read.

Layout mirrored from the peers' own code (WangHanLinHenry/STeCa, WeiminXiong/IPR, Yifan-Song793/ETO):

- SFT files (FastChat ``train.py``: ``json.load``, then each record's ``conversations``): ``id`` +
  ``conversations`` of ``{"from": "human"|"gpt", "value"}``, strictly alternating from a human turn; the
  instruction turn is followed by ``gpt: OK`` and an ALFWorld-style task turn (``<observation>\\n\\nYour
  task is to: <task>``), as in ETO's ``instruction_part``. ``reward`` is the outcome reward, as ETO's
  WebShop file and steca's sharegpt importer read it.
- Pair files (``train_dpo.py`` / STeCa's ``train_dpo_ours.py``: ``load_dataset("json")``, then
  ``prompt`` / ``chosen`` / ``rejected`` turn lists, prompt + chosen alternating from a human turn, chosen
  and rejected ending on a gpt turn). STeCa's reinforced-training file (``final_data_rft_train.json``)
  adds ``deviation`` (nDTW) and ``reward`` (1 ± η·deviation).
"""

from __future__ import annotations

from . import pairs
from .build_dir import BuildDir
from .bundle import Bundle
from .chat import to_sharegpt, trajectory_turns
from .methods import pair_kinds

USAGE = """\
import json
from datasets import load_dataset

sft = json.load(open("OUT/expert.json"))             # FastChat train.py --data_path OUT/expert.json
pm = load_dataset("json", data_files="OUT/steca_rft.json")["train"]  # STeCa: fastchat/train/train_dpo_ours.py
"""


def _sft_record(row: dict, trajectory, weight: float, record_id: str) -> dict:
    return {
        "id": record_id,
        "task_id": row["provenance"]["task_id"],
        "conversations": trajectory_turns(trajectory, row["messages"][0]["content"]),
        "reward": trajectory.outcome_reward,
        "weight": weight,
    }


def _pair_record(pair: pairs.Pair, *extra: str) -> dict:
    record = {
        "id": pair.id,
        "prompt": to_sharegpt(pair.prompt),
        "chosen": to_sharegpt(pair.chosen),
        "rejected": to_sharegpt(pair.rejected),
    }
    values = {"deviation": pair.distance, "reward": pair.weight, "margin": pair.margin, "source": pair.kind}
    return record | {key: values[key] for key in extra}


def export(build: BuildDir) -> Bundle:
    build.require_cache("--format sharegpt")
    bundle = Bundle(
        format="sharegpt",
        title="ShareGPT files for the ETO / IPR / STeCa training scripts",
        consumer="the FastChat-based training scripts of ETO, IPR and STeCa",
        usage=USAGE,
    )
    cache = build.engine.cache
    if "expert" in build.rows:
        rows = build.rows["expert"]
        trajectories = cache.get_trajectories([r["id"] for r in rows])  # an expert row's id is its trajectory key
        # one expert trajectory per task: the record id is the task id, as in ETO's files (matched to tasks by id)
        records = [_sft_record(r, trajectories[r["id"]], 1.0, r["provenance"]["task_id"]) for r in rows]
        bundle.files["expert.json"] = sorted(records, key=lambda r: r["id"])
    if "de" in build.rows:
        rows = build.rows["de"]
        episodes = build.engine.rollouts([r["id"] for r in rows])  # a De row's id is its rollout key
        bundle.files["de.json"] = [_sft_record(r, episodes[r["id"]], r["reward_weight"], r["id"]) for r in rows]
    steca = [
        *pairs.calibration_pairs(build, bundle, "dc"),
        *pairs.subtrajectory_pairs(build, bundle),
        *pairs.explored_pairs(build, bundle),
    ]
    if steca:
        bundle.files["steca_rft.json"] = [
            _pair_record(p, "deviation", "reward", "source") for p in sorted(steca, key=pairs.Pair.sort_key)
        ]
    kinds = [k for k in pair_kinds() if k.sharegpt_file]  # the pair files of the methods' own scripts
    if build.recipe.uses_engine:
        for kind in kinds:
            found = sorted(kind.assemble(build, bundle), key=pairs.Pair.sort_key)
            bundle.files[kind.sharegpt_file] = [_pair_record(p, "margin") for p in found]
    bundle.contents = [
        "`expert.json`: the expert trajectories as FastChat SFT records (`id` = the task id, `conversations`, "
        "plus `task_id`, `reward` = outcome reward, `weight`), sorted by id; the warm-up SFT file of ETO/IPR/STeCa",
        "`de.json`: the agent's own successful explorations (De) in the same layout, `id` = the De row id (several "
        "per task are possible), `weight` = r_e (RFT data)",
        "`steca_rft.json`: STeCa's reinforced-training file (`id`, `prompt`, `chosen`, `rejected`, `deviation`, "
        "`reward`, as `final_data_rft_train.json`; plus `source` = dc | ds | de): dc = Dc context -> calibrated "
        "vs deviated continuation, ds = expert prefix -> expert vs agent continuation from the first error, "
        "de = task -> the agent's success vs the expert; `reward` is the build's r_c / r_s / r_e",
        *(k.sharegpt_card for k in kinds),
    ]
    bundle.notes = [
        "Records name no `game_file`: steca tasks are not ALFWorld game paths; `task_id` says which task a record is.",
        "SFT records end with the last observation as a human turn (FastChat masks it; steca's importer reads it "
        "back), so re-importing `expert.json` gives the same steps.",
        "The instruction turn is the build's system prompt; the task turn is `<first observation>\\n\\nYour task is "
        "to: <instruction>`, the ALFWorld layout the peers' prompts and steca's importer use.",
        "No threshold is applied to the pair files beyond ties (filter on `margin`).",
    ]
    return bundle
