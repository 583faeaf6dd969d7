"""Memory-fit lines for ``models show`` and ``pull --list``: plain numbers in, text out."""

from __future__ import annotations

from collections.abc import Mapping

from llmcli.units import format_bytes

MARKS = {"fits": "✓ fits", "tight": "~ tight", "too big": "✗ too big"}


def mark(verdict: str) -> str:
    return MARKS.get(verdict, verdict)


def fit_lines(fit: Mapping[str, object]) -> list[str]:
    """'Memory at ctx 4096: …' and one line per kind of memory with its verdict."""

    def mem(key: str) -> str:
        value = fit[key]
        return format_bytes(value) if isinstance(value, int) else "?"

    lines = [
        f"Memory at ctx {fit['ctx']}: {mem('total')} "
        f"(weights {mem('weights')} + KV cache {mem('kv_cache')} + compute {mem('compute')} "
        f"+ runtime {mem('runtime')})",
        f"This machine's RAM: {mem('ram_total')}, {mem('ram_available')} free → "
        f"{mark(str(fit['fits_ram']))}",
    ]
    if "vram_total" in fit:
        lines.append(
            f"GPU memory: {mem('vram_total')}, {mem('vram_free')} free → "
            f"{mark(str(fit['fits_vram']))} (weights, KV cache and compute offloaded)"
        )
    return lines
