"""Will this model fit here? Memory needed at a context size, against this machine's memory.

The estimate has four terms, each from how llama.cpp (through llama-cpp-python)
actually spends memory, checked against SmolLM2-135M Q4_1 on x86-64 Linux:

* **weights**: the tensor data of the file (mmap'd; a forward pass touches every
  page, so all of it becomes resident). 92.1 MiB, as llama.cpp's "model buffer size".
* **KV cache**: ``n_layer × n_ctx × n_head_kv × (head_dim_k + head_dim_v)`` f16
  values (2 bytes). llama.cpp clears the buffer when it creates it, so all of it is
  resident from the start: 90.0 MiB at ctx 4096, as llama.cpp reports; peak RSS of
  ``ask`` grows by 22.5 KiB per context token, the same slope.
* **compute buffer**: llama.cpp reserves the graph of one micro-batch (512 tokens):
  dominated by that batch's output logits (``n_vocab`` floats per token), plus the
  widest activations (the MLP's ``n_ff`` and the residual ``n_embd``). The formula
  gives 100.1 MiB where llama.cpp reserves 99.4 MiB at ctx 4096 (50.1 vs 49.1 at
  ctx 256, a 256-token batch). A short prompt touches only part of it (peak RSS of
  ``ask "Hi"`` at ctx 4096 is 277 MiB), a prompt of at least one full batch all of it
  (320 MiB): the estimate is for the second case, so it does not promise what a long
  prompt then breaks.
* **runtime**: CPython with llmcli, numpy and llama-cpp-python's shared libraries
  imported and nothing loaded: 51.3 MiB peak RSS measured
  (``python -c "import llmcli.cli.app, llama_cpp"``, CPython 3.11); 52 MiB here.

Sum at ctx 4096: 334 MiB against 320 MiB measured for ``ask --ctx 4096`` with a
2,000-token prompt (+4 %). Architectures with sliding-window or compressed (MLA)
attention need less KV cache than this formula says; it is then an upper bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from llmcli.store.gguf_header import GGUFFile

MIB = 1024 * 1024
RUNTIME_BYTES = 52 * MIB
"""Measured peak RSS of the Python process with every library imported (see above)."""
N_UBATCH = 512
"""llama-cpp-python's default micro-batch: the compute graph is reserved for it."""
KV_BYTES = 2
"""f16 keys and values (llama.cpp's default cache type)."""
DEFAULT_FIT_CTX = 4096


@dataclass(frozen=True)
class Architecture:
    """The sizes the memory estimate needs, from a GGUF header."""

    n_layer: int
    n_embd: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_vocab: int
    n_ff: int
    trained_ctx: int | None

    @classmethod
    def from_gguf(cls, gguf: GGUFFile) -> Architecture | None:
        """None when the header lacks the sizes (an adapter, an unusual architecture)."""
        n_layer = _int(gguf.arch_value("block_count"))
        n_embd = _int(gguf.arch_value("embedding_length"))
        n_head = _int(gguf.arch_value("attention.head_count"))
        if not (n_layer and n_embd and n_head):
            return None
        n_head_kv = _int(gguf.arch_value("attention.head_count_kv")) or n_head
        head_k = _int(gguf.arch_value("attention.key_length")) or n_embd // n_head
        head_v = _int(gguf.arch_value("attention.value_length")) or head_k
        return cls(
            n_layer=n_layer,
            n_embd=n_embd,
            n_head_kv=n_head_kv,
            head_dim_k=head_k,
            head_dim_v=head_v,
            n_vocab=_vocab(gguf),
            n_ff=_int(gguf.arch_value("feed_forward_length")) or 4 * n_embd,
            trained_ctx=gguf.context_length,
        )


def _int(value: object) -> int | None:
    if isinstance(value, list):  # per-layer values (some architectures): take the largest
        numbers = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _vocab(gguf: GGUFFile) -> int:
    tokens = gguf.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and tokens:
        return len(tokens)
    for tensor in gguf.tensors:
        if tensor.name == "token_embd.weight" and len(tensor.shape) == 2:
            return tensor.shape[1]
    return _int(gguf.arch_value("vocab_size")) or 0


def weights_bytes(gguf: GGUFFile) -> int:
    return sum(t.n_bytes for t in gguf.tensors)


@dataclass(frozen=True)
class MemoryEstimate:
    ctx: int
    weights: int
    kv_cache: int
    compute: int
    runtime: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.runtime

    @property
    def device_part(self) -> int:
        """What a full GPU offload puts in VRAM: weights, KV cache, compute buffer."""
        return self.weights + self.kv_cache + self.compute


def fit_ctx(requested: int | None, arch: Architecture | None) -> int:
    """The context the estimate is for: asked for, else what ``ask`` uses (trained, ≤ 4096)."""
    from math import ceil

    if requested:
        return max(256, ceil(requested / 256) * 256)
    trained = arch.trained_ctx if arch and arch.trained_ctx else DEFAULT_FIT_CTX
    return max(256, ceil(min(trained, DEFAULT_FIT_CTX) / 256) * 256)


def estimate(weights: int, arch: Architecture, ctx: int) -> MemoryEstimate:
    """Memory to run a model with ``weights`` bytes of tensors at context ``ctx``."""
    kv = arch.n_layer * ctx * arch.n_head_kv * (arch.head_dim_k + arch.head_dim_v) * KV_BYTES
    ubatch = min(N_UBATCH, ctx)
    compute = 4 * ubatch * (arch.n_vocab + arch.n_ff + arch.n_embd)
    return MemoryEstimate(ctx, weights, kv, compute, RUNTIME_BYTES)


@dataclass(frozen=True)
class MachineMemory:
    ram_total: int
    ram_available: int
    vram_total: int | None = None
    vram_free: int | None = None


def machine_memory(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> MachineMemory:
    """RAM as this process sees it: the machine's, or a container's cgroup limit if lower."""
    total, available = _meminfo(meminfo)
    limit = _cgroup_limit(cgroup)
    if limit is not None and limit < total:
        used = _read_int(cgroup / "memory.current") or 0
        total, available = limit, min(available, max(0, limit - used))
    return MachineMemory(total, available)


def _meminfo(path: Path) -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    if "MemTotal" in values:
        return values["MemTotal"], values.get("MemAvailable", values.get("MemFree", 0))
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return pages * size, pages * size


def _cgroup_limit(root: Path) -> int | None:
    return _read_int(root / "memory.max")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


FITS, TIGHT, TOO_BIG = "fits", "tight", "too big"


def verdict(need: int, total: int, available: int) -> str:
    """``fits`` in what is free now, ``tight`` only in all of it, else ``too big``."""
    if need <= available:
        return FITS
    if need <= total:
        return TIGHT
    return TOO_BIG


def fit_summary(est: MemoryEstimate, machine: MachineMemory) -> dict[str, object]:
    """The JSON form (``models show --json``'s ``memory``): bytes, and the verdicts."""
    data: dict[str, object] = {
        "ctx": est.ctx,
        "weights": est.weights,
        "kv_cache": est.kv_cache,
        "compute": est.compute,
        "runtime": est.runtime,
        "total": est.total,
        "ram_total": machine.ram_total,
        "ram_available": machine.ram_available,
        "fits_ram": verdict(est.total, machine.ram_total, machine.ram_available),
    }
    if machine.vram_total is not None:
        free = machine.vram_free if machine.vram_free is not None else machine.vram_total
        data["vram_total"] = machine.vram_total
        data["vram_free"] = free
        data["fits_vram"] = verdict(est.device_part, machine.vram_total, free)
    return data
