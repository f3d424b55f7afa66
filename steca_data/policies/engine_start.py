"""Why a vLLM engine did not start, as one line a user can act on.

vLLM reports a model whose code cannot be imported in its inspection subprocess as a pydantic dump
("Model architectures ['LlamaForCausalLM'] failed to be inspected"); the cause (a broken torch extension wheel,
a missing package) is only in that subprocess's log. Asked again here, in a fresh interpreter with the same
environment, the cause becomes one line. A weights file that cannot be read is named as such, never as
"out of memory".
"""

from __future__ import annotations

import subprocess
import sys

from steca_data.compat import EXTENSIONS
from steca_data.core.errors import EngineStartError
from steca_data.core.failures import describe

DOCTOR = "run `steca-data doctor` for what this machine has and how to fix it"
_WEIGHTS_MARKERS = ("safetensor", "headertoolarge", "invalidheader", "metadataincompletebuffer", "deserializ")


def _chain(exc: BaseException) -> list[BaseException]:
    seen, out, current = set(), [], exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _module_of(architecture: str) -> str:
    """The module vLLM would import for ``architecture`` (its registry), else vLLM's model package."""
    try:
        from vllm.model_executor.models.registry import ModelRegistry

        model = ModelRegistry.models.get(architecture)
        return getattr(model, "module_name", None) or "vllm.model_executor.models"
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return "vllm.model_executor.models"


def import_failure(module: str, timeout: float = 300) -> str | None:
    """The last line of the error a fresh interpreter (this environment) raises importing ``module``; None if
    it imports."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"importing {module} took more than {timeout:.0f} s"
    if done.returncode == 0:
        return None
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def explain_engine_start(exc: BaseException, path: str, architectures: list[str]) -> EngineStartError:
    """The error to raise for an engine that did not start on ``path``."""
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, MemoryError) for e in chain):
        return EngineStartError(
            f"vLLM ran out of memory starting an engine for {path}: lower VLLM_CPU_KVCACHE_SPACE (GiB, CPU) or "
            f"policy.batch_size, or free memory, and run again"
        )
    if any(m in (type(e).__name__ + str(e)).lower().replace(" ", "") for e in chain for m in _WEIGHTS_MARKERS):
        return EngineStartError(
            f"{path}: the model's weights cannot be read ({describe(chain[-1], 200)}): the file is damaged or "
            f"incomplete; save or train the model again"
        )
    if "failed to be inspected" in text:
        arch = architectures[0] if architectures else "the model"
        cause = import_failure(_module_of(arch)) or "the import succeeded when tried again"
        broken = [name for name in EXTENSIONS if name in cause]
        if broken:
            return EngineStartError(
                f"vLLM could not import the code of {arch}: {broken[0]} is broken beside this torch build "
                f"({cause}); {DOCTOR}"
            )
        return EngineStartError(f"vLLM could not import the code of {arch} in a fresh interpreter ({cause}); {DOCTOR}")
    return EngineStartError(f"vLLM could not start an engine for {path}: {describe(exc, 300)}; {DOCTOR}")
