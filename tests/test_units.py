"""The one byte-size and one parameter-count formatter (llmcli/units.py), and that they are
the only ones: every command spells sizes the same way (binary, KiB/MiB/GiB)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmcli.units import format_bytes, format_count

PACKAGE = Path(__file__).resolve().parents[1] / "llmcli"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (2048, "2.0 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # never "1024.0 KiB"
        (98_362_432, "93.8 MiB"),  # the bundled SmolLM2 file
        (334 * 2**20, "334 MiB"),  # no decimal from 100 of a unit
        (int(23.4 * 2**30), "23.4 GiB"),
        (5 * 2**40, "5.0 TiB"),
    ],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1.0K"),
        (999_960, "1.0M"),  # never "1000.0K"
        (134_515_008, "134.5M"),
        (960_000_000, "960.0M"),
        (1_700_000_000, "1.7B"),
        (7 * 10**12, "7.0T"),
    ],
)
def test_format_count(count: int, text: str) -> None:
    assert format_count(count) == text


def test_no_other_module_spells_decimal_or_ambiguous_byte_units() -> None:
    """A second formatter would bring its own spelling back ("KB" in doctor, "kB" in pull)."""
    spelled = {"KB", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "units.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in spelled:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert found == []
