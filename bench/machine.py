"""What machine a benchmark ran on: CPU, cores, memory, load, platform, package versions, llama.cpp's build.

One description for every benchmark script, so results from different scripts compare on the same facts.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("outcore", "llama-cpp-python", "wasmtime", "bpe-openai", "numpy", "matplotlib", "rlms")  # rlms: ref-rlm


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict[str, Any]:
    """CPU, cores, memory, the 1-minute load at the start (a busy machine skews timings), versions."""
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        load: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    llama_info = None
    try:  # the CPU features and GPU backends llama.cpp was built with
        import llama_cpp

        llama_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - a missing or broken llama.cpp only loses this line
        pass
    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem,
        "load_avg_1m_at_start": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "llama_cpp_system_info": llama_info,
        "gpu": "none (CPU build)" if llama_info and "CUDA" not in llama_info else None,
    }
