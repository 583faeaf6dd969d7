"""What the machine offers the engine: physical cores, and GPU-layer resolution."""

from __future__ import annotations

import os
from pathlib import Path

from llmcli.engine.base import GpuLayers
from llmcli.errors import UsageError

ALL_LAYERS = -1
"""llama.cpp offloads every layer when ``n_gpu_layers`` is -1."""


def physical_cores(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    """Physical cores available to this process.

    llama.cpp runs fastest with one thread per physical core; hyper-threads slow it
    down, and llama-cpp-python's default (``cpu_count() // 2``) halves a 2-core VM.
    """
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    logical = logical or os.cpu_count() or 1
    cores = _cores_from_cpuinfo(cpuinfo)
    return max(1, min(logical, cores) if cores else logical)


def _cores_from_cpuinfo(cpuinfo: Path) -> int | None:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    pairs: set[tuple[str, str]] = set()
    physical = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if physical is not None and core is not None:
                pairs.add((physical, core))
            physical = core = None
    if physical is not None and core is not None:
        pairs.add((physical, core))
    return len(pairs) or None


def has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises Intel AMX tiles (``amx_int8``/``amx_bf16`` flags).

    A llama.cpp built natively on such a CPU places quantized weights in its AMX
    buffer type; under a hypervisor that advertises AMX without supporting its tile
    state (measured on a Firecracker VM), the first ``llama_decode`` then segfaults.
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.partition(":")[2].split()
            return "amx_int8" in flags or "amx_bf16" in flags
    return False


def parse_gpu_layers(value: str) -> GpuLayers:
    """Parse ``--gpu-layers N|all|auto``."""
    lowered = value.strip().lower()
    if lowered in ("all", "auto"):
        return lowered  # type: ignore[return-value]
    try:
        number = int(lowered)
    except ValueError:
        raise UsageError(
            f"invalid --gpu-layers value {value!r}", hint="use a number of layers, 'all' or 'auto'"
        ) from None
    if number < 0:
        raise UsageError("--gpu-layers must not be negative", hint="use 0 for CPU only, or 'all'")
    return number


def resolve_gpu_layers(requested: GpuLayers, gpu_supported: bool) -> int:
    """``auto``: every layer when the llama.cpp build can offload, else none."""
    if requested == "auto":
        return ALL_LAYERS if gpu_supported else 0
    if requested == "all":
        return ALL_LAYERS
    return requested


def gpu_memory(timeout_s: float = 5.0) -> tuple[int, int] | None:
    """(total, free) bytes of the first GPU, when this llama.cpp build can offload to one.

    ``nvidia-smi`` answers for NVIDIA GPUs without importing anything heavy; only when it
    reports a GPU is llama.cpp asked whether this build can use it (a CPU build cannot,
    and then VRAM is beside the point). None everywhere else.
    """
    import shutil
    import subprocess

    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
        total_mib, free_mib = (int(v) for v in out.splitlines()[0].split(","))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return None
    return total_mib * 1024 * 1024, free_mib * 1024 * 1024
