"""Serve a model with vLLM's OpenAI-compatible server: ``python -m steca_data.serve --model DIR ...``.

The arguments are vLLM's own (``vllm serve``'s). Two reasons for this wrapper: the ``vllm`` console script
fails under the CPU build (``PackageNotFoundError: vllm``), and vLLM's engine process is spawned, so it
re-imports this module first — which imports ``steca_data`` and with it ``compat``, hiding the torch
extension wheels that cannot load beside the CPU torch. Point ``policy.base_url`` at it; constrained
actions need ``--structured-outputs-config '{"backend": "guidance"}'``.
"""

from __future__ import annotations

import runpy
import sys

import steca_data  # noqa: F401 - hides broken torch extensions, in this process and in spawned ones


def main() -> None:
    sys.argv[0] = "vllm-serve"
    runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__")


if __name__ == "__main__":
    main()
