"""Writing built rows as Hugging Face datasets: save_to_disk, parquet, a dataset card, and the Hub.

Layout of a build directory::

    cache.duckdb            every unit (see the README's table list)
    dataset/                DatasetDict saved with save_to_disk, one key per dataset (expert, dc, de, ds)
    parquet/<name>.parquet  the same rows as parquet
    README.md               dataset card (also copied into dataset/): recipe, versions, counts, lengths
    recipe.yaml             the resolved recipe

The four are written together into a staging folder and switched in as one unit (``build.switch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from steca_data import __version__
from steca_data.build.switch import recover, staging_dir, switch
from steca_data.core.cpu import machine_description
from steca_data.core.schema_io import to_hf_dataset
from steca_data.recipe.model import Recipe


class PushError(RuntimeError):
    pass


@dataclass
class OutputResult:
    written: bool
    fingerprint: str
    counts: dict[str, int]


def rows_fingerprint(datasets: dict[str, list[dict]]) -> str:
    blob = json.dumps(datasets, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _length_stats(rows: list[dict]) -> dict[str, float]:
    if not rows:
        return {}
    turns = [sum(m["role"] == "assistant" for m in r["messages"]) for r in rows]
    chars = [sum(len(m["content"]) for m in r["messages"]) for r in rows]
    weights = [r["reward_weight"] for r in rows]
    return {
        "assistant_turns_mean": round(statistics.mean(turns), 2),
        "assistant_turns_max": max(turns),
        "chars_mean": round(statistics.mean(chars), 1),
        "chars_max": max(chars),
        "reward_weight_mean": round(statistics.mean(weights), 4),
    }


def card_head(header: dict, title: str) -> list[str]:
    """A Hugging Face dataset card's first lines: YAML front matter (configs, tags), then the title."""
    return ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "", f"# {title}", ""]


def dataset_card(recipe: Recipe, datasets: dict[str, list[dict]], env_version: str, fingerprint: str) -> str:
    header = {
        "configs": [
            {"config_name": n, "data_files": [{"split": "train", "path": f"parquet/{n}.parquet"}]} for n in datasets
        ],
        "tags": ["steca", "agents", "trajectories", "text-games"],
    }
    lines = [
        *card_head(header, recipe.name),
        recipe.description or "Step-level agent training data built with steca-data.",
        "",
        f"- built by steca-data {__version__}; recipe fingerprint `{recipe.fingerprint()}`; "
        f"rows fingerprint `{fingerprint}`",
        f"- environment: {recipe.env.name} ({env_version}), game `{recipe.env.game}`",
        f"- built on: {machine_description()}; the same recipe rebuilt on the same CPU type gives byte-identical "
        "datasets (another CPU type's float kernels can train a different warm-up model)",
        "",
        "## Datasets",
        "",
        "| dataset | rows | mean assistant turns | max turns | mean chars | max chars | mean weight |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in datasets.items():
        s = _length_stats(rows)
        lines.append(
            f"| {name} | {len(rows)} | {s.get('assistant_turns_mean', '-')} | {s.get('assistant_turns_max', '-')} "
            f"| {s.get('chars_mean', '-')} | {s.get('chars_max', '-')} | {s.get('reward_weight_mean', '-')} |"
        )
    lines += [
        "",
        "Rows follow the JSON Schemas in steca-data's `schemas/` folder (`row_<dataset>.schema.json`).",
        'Load with `datasets.load_from_disk("<build>/dataset")` or from parquet.',
        "",
        "## Recipe",
        "",
        "```yaml",
        yaml.safe_dump(recipe.content(), sort_keys=False).strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def _write_set(staging: Path, recipe: Recipe, dd, card: str) -> list[str]:
    """Every output of one build into ``staging``; returns the entry names written."""
    names = []
    if "arrow" in recipe.output.formats:
        dd.save_to_disk(str(staging / "dataset"), num_shards={name: 1 for name in dd})  # empty splits get a shard
        (staging / "dataset" / "README.md").write_text(card)
        names.append("dataset")
    if "parquet" in recipe.output.formats:
        (staging / "parquet").mkdir()
        for name, ds in dd.items():
            ds.to_parquet(str(staging / "parquet" / f"{name}.parquet"))
        names.append("parquet")
    (staging / "README.md").write_text(card)
    (staging / "recipe.yaml").write_text(yaml.safe_dump(recipe.content(), sort_keys=False))
    return [*names, "README.md", "recipe.yaml"]


def write_outputs(
    recipe: Recipe, datasets: dict[str, list[dict]], env_version: str, previous: str | None
) -> OutputResult:
    """Write dataset, parquet, card and recipe as one set (staged, then switched in by renames: a kill leaves
    the old set or the new one); skip when the rows are unchanged and the set is present."""
    from datasets import DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # our own reporter says what is being written

    build = recipe.build_dir
    fingerprint = rows_fingerprint(datasets)
    counts = {name: len(rows) for name, rows in datasets.items()}
    recover(build)
    targets = {"arrow": build / "dataset", "parquet": build / "parquet"}
    wanted = [targets[f] for f in recipe.output.formats] + [build / "README.md"]
    if previous == fingerprint and all(p.exists() for p in wanted):
        return OutputResult(False, fingerprint, counts)

    dd = DatasetDict({name: to_hf_dataset(name, rows) for name, rows in datasets.items()})
    card = dataset_card(recipe, datasets, env_version, fingerprint)
    staging = staging_dir(build)
    switch(build, _write_set(staging, recipe, dd, card))
    return OutputResult(True, fingerprint, counts)


def hub_token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - no stored token
        return None


def repo_id_problem(repo_id: str) -> str | None:
    """Why ``repo_id`` cannot name a Hub repository (checked before any network), or None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not repo_id.strip():
        return "empty Hub repo id; name one such as you/steca-quickstart"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        first = " ".join(str(exc).split(".")[0].split())
        return f"{repo_id!r} is not a Hub repo id ({first}); name one such as you/steca-quickstart"
    return None


def push_to_hub(build_dir: Path, repo_id: str, private: bool = True) -> str:
    """Upload parquet files and the card; one dataset config per built dataset."""
    problem = repo_id_problem(repo_id)
    if problem:
        raise PushError(problem)
    token = hub_token()
    if not token:
        raise PushError(
            f"cannot push to {repo_id}: no Hugging Face token (set HF_TOKEN). "
            f"The build in {build_dir} is complete and kept; push later with "
            f"`steca-data push {build_dir} {repo_id}`."
        )
    if not (build_dir / "parquet").is_dir():
        raise PushError(f"{build_dir}/parquet is missing: build with output.formats including 'parquet'")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(build_dir),
        allow_patterns=["parquet/*.parquet", "README.md"],
        commit_message="steca-data build",
    )
    return f"https://huggingface.co/datasets/{repo_id}"
