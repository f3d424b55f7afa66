"""The README stays honest: its commands are the ones CI runs, and it documents every cache table."""

from __future__ import annotations

import re

from steca_data.build.tables import tables_markdown
from tests.conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.DOTALL)[:2]


def test_ci_runs_the_readme_test_command_verbatim():
    install_and_run, install_and_test = _readme_commands()
    assert "steca-data build recipes/quickstart.yaml" in install_and_run
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == install_and_test


def test_readme_documents_every_cache_table():
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- tables:start -->\n")[1].split("<!-- tables:end -->")[0]
    assert block.strip() == tables_markdown(), (
        "regenerate the README table with steca_data.build.tables.tables_markdown()"
    )
