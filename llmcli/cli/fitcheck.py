"""Shared by ``models show`` and ``pull --list``: the memory estimate against this machine."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcli.store.fit import MachineMemory
    from llmcli.store.gguf_header import GGUFFile


def this_machine() -> MachineMemory:
    """RAM (cgroup-aware) and, where a GPU build sees one, the GPU's memory."""
    from llmcli.engine.hardware import gpu_memory
    from llmcli.store.fit import machine_memory

    machine = machine_memory()
    gpu = gpu_memory()
    if gpu is not None:
        machine = replace(machine, vram_total=gpu[0], vram_free=gpu[1])
    return machine


def fit_for(
    gguf: GGUFFile, ctx: int | None, machine: MachineMemory, *, weights: int | None = None
) -> dict[str, object] | None:
    """The ``memory`` summary for ``gguf`` (or a sibling quant of ``weights`` bytes)."""
    from llmcli.store.fit import Architecture, estimate, fit_ctx, fit_summary, weights_bytes

    arch = Architecture.from_gguf(gguf)
    if arch is None or gguf.is_lora_adapter:
        return None
    est = estimate(
        weights if weights is not None else weights_bytes(gguf), arch, fit_ctx(ctx, arch)
    )
    return fit_summary(est, machine)
