"""The ``llmcli bench`` view: a line about the setup, then one row per test (as llama-bench)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmcli.render.anatomy import safe_text
from llmcli.units import format_bytes, format_count


def bench_heading(info: Mapping[str, Any]) -> Text:
    """Model, size, parameters, backend, threads, GPU layers."""
    layers = info["gpu_layers"]
    text = Text(safe_text(str(info["model"])), style="bold")
    text.append(
        f"  {format_bytes(int(info['file_size']))} · {format_count(int(info['parameters']))} "
        f"params · {info['backend']} · {info['threads']} threads · GPU layers "
        f"{'all' if layers == -1 else layers} · {info['repetitions']} runs per test",
        style="dim",
    )
    return text


def bench_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("test")
    for name in ("t/s median", "min", "max", "mean ± sd"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        tps = row["tokens_per_s"]
        table.add_row(
            str(row["test"]),
            Text(f"{tps['median']:.2f}", style="bold"),
            f"{tps['min']:.2f}",
            f"{tps['max']:.2f}",
            f"{tps['mean']:.2f} ± {tps['stdev']:.2f}",
        )
    return table


def bench_view(info: Mapping[str, Any]) -> Group:
    return Group(bench_heading(info), bench_table(info["results"]))
