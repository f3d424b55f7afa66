"""The command-line tools. Started as a tool (``steca-data``, ``steca-train``, ``python -m steca_data.cli.main``),
Ctrl-C during the imports, before any work, ends quietly (exit 130) instead of printing an import traceback."""

from steca_data.cli.signals import quiet_start_up

quiet_start_up()
