"""The cosine-similarity matrix of ``llmcli embed``: plain numbers in, a Rich table out."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmcli.render.anatomy import safe_text

LABEL_WIDTH = 32


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > LABEL_WIDTH:
        one_line = one_line[: LABEL_WIDTH - 1] + "…"
    return safe_text(one_line)


def _style(value: float) -> str | None:
    if value >= 0.999:
        return "bold"
    if value >= 0.8:
        return "green"
    if value >= 0.5:
        return "yellow"
    return None


def similarity_view(
    texts: Sequence[str], matrix: Sequence[Sequence[float]], *, caption: str
) -> Group:
    """Rows and columns are the inputs (numbered; rows also show the text)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("text", overflow="ellipsis", no_wrap=True)
    for j in range(len(texts)):
        table.add_column(str(j + 1), justify="right")
    for i, text in enumerate(texts):
        cells = [
            Text(f"{matrix[i][j]:.4f}", style=_style(matrix[i][j]) or "") for j in range(len(texts))
        ]
        table.add_row(str(i + 1), Text(_short(text)), *cells)
    heading = Text("cosine similarity", style="bold")
    return Group(heading, table, Text(caption, style="dim"))
