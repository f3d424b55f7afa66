"""CPU time the machine was owed and did not get: the hypervisor's *steal* time, from /proc/stat.

On a shared VM other tenants take CPU from this one: on the project's 2-core machines steal ran at 0-25 %
and swung the same work's wall time by +-20 % within minutes (up to 2x for the warm-up). Timings that users
compare (bench arms, stage times) report it beside them.
"""

from __future__ import annotations


def cpu_times() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks of this machine so far (None where /proc/stat is not there)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU ticks between two ``cpu_times`` readings that went to other tenants."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says: float kernels differ between
    CPU types, so byte-identical rebuilds hold per CPU type, and builds record it."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("model name", "Model name", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "asimd", "sve")


def instruction_sets() -> str:
    """The machine and the vector instruction sets that decide which float kernels torch runs."""
    import platform

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    found = [f for f in _ISA_FLAGS if f in flags]
    return " ".join([platform.machine(), *found])


def machine_description() -> str:
    """``'AMD EPYC (x86_64 avx2 fma avx512f ...)'``: what builds record in their card and cache."""
    return f"{cpu_model()} ({instruction_sets()})"
