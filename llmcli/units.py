"""Sizes and counts written for people: one spelling of each unit everywhere.

Bytes are binary, with the IEC names (1 KiB = 1,024 B, then MiB, GiB, TiB). llmcli puts
file sizes next to memory: a model's weights are mapped into RAM, the memory fit adds
them to the KV cache, llama.cpp reports both in MiB, and ``serve --state-cache 2G``
means 2 GiB. One base keeps those numbers comparable, and the IEC names cannot be
misread (``KB``, ``kB`` and ``KiB`` were all in use before). Parameter counts are
decimal (``134.5M``, ``1.7B``), as model cards and repository names write them.

Imports nothing of llmcli, so every layer (store, doctor, render, cli) can use it.
"""

from __future__ import annotations

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_COUNT_UNITS = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))


def format_bytes(n: float) -> str:
    """``98362432`` -> ``'93.8 MiB'``: whole bytes below 1 KiB, then one decimal below
    100 of a unit and none from 100 (``'334 MiB'``), never ``'1024 KiB'``."""
    value, unit = float(n), _BYTE_UNITS[0]
    for bigger in _BYTE_UNITS[1:]:
        if round(abs(value)) < 1024:
            break
        value, unit = value / 1024, bigger
    if unit == _BYTE_UNITS[0]:
        return f"{value:.0f} B"
    if abs(value) < 99.95:
        return f"{value:.1f} {unit}"
    return f"{value:.0f} {unit}"


def format_count(n: int) -> str:
    """``134515008`` -> ``'134.5M'``: a parameter count the way model cards write it."""
    for unit, size in _COUNT_UNITS:
        if abs(n) / size >= 0.99995:  # 999,960 reads as 1.0M, not 1000.0K
            return f"{n / size:.1f}{unit}"
    return str(n)
