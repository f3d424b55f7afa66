"""The README.md dataset card of an export: what it holds, for whom, from which build.

The card carries the source build's recipe fingerprint (the same one its rows carry in
``provenance.recipe_hash``), so an exported file can always be traced to the recipe that made it. It
names no absolute path and no time, so exporting the same build twice writes the same card.
"""

from __future__ import annotations

from steca_data import __version__
from steca_data.build.output import card_head

from .build_dir import BuildDir
from .bundle import Bundle


def _configs(bundle: Bundle) -> list[dict]:
    configs = []
    if bundle.splits:
        files = [{"split": name, "path": f"parquet/{name}.parquet"} for name in bundle.splits]
        configs.append({"config_name": "default", "data_files": files})
    for name in bundle.files:
        configs.append({"config_name": name.rsplit(".", 1)[0], "data_files": [{"split": "train", "path": name}]})
    return configs


def render_card(bundle: Bundle, build: BuildDir) -> str:
    header = {"configs": _configs(bundle), "tags": ["steca", "agents", "trajectories", bundle.format]}
    recipe = build.recipe
    lines = [
        *card_head(header, f"{recipe.name}: {bundle.title}"),
        f"Exported by `steca-data export --format {bundle.format}` (steca-data {__version__}) for {bundle.consumer}.",
        "",
        f"- source build: `{build.path.name}` (recipe `{recipe.name}`), "
        f"recipe fingerprint `{build.recipe_fingerprint}`",
        f"- environment: {recipe.env.name}, game `{recipe.env.game}`; build datasets: "
        + ", ".join(f"{name} ({n} rows)" for name, n in build.counts().items()),
        "",
        "## Counts",
        "",
        "| split or file | rows |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in bundle.counts().items()],
        "",
        "## Contents",
        "",
        *[f"- {line}" for line in bundle.contents],
        "",
    ]
    if bundle.notes:
        lines += ["## Representation", "", *[f"- {line}" for line in bundle.notes], ""]
    if bundle.skipped:
        lines += ["## Left out", "", *[f"- {n} × {reason}" for reason, n in sorted(bundle.skipped.items())], ""]
    if bundle.usage:
        lines += ["## Use", "", "```python", bundle.usage.strip(), "```", ""]
    return "\n".join(lines)
