"""The logit-lens table: one row per decoder block, what it would predict at the last position.

Takes plain rows (ids, token bytes, log-probabilities), never an engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmcli.render.tokens import SPECIAL_STYLE, piece_text, visible_piece


@dataclass(frozen=True)
class LensToken:
    token_id: int
    piece: bytes
    logprob: float
    special: bool = False

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class LensLine:
    """A block's row: its top candidates, and where the final prediction stands in it."""

    layer: int
    top: tuple[LensToken, ...]
    final_rank: int
    final_prob: float


def _label(token: LensToken) -> Text:
    if token.special:
        return Text(piece_text(token.piece), style=SPECIAL_STYLE)
    return visible_piece(token.piece)


def lens_table(lines: Sequence[LensLine], final: LensToken) -> Table:
    """Block, its top-1 token and probability, the final token's rank and probability there."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("block", justify="right", style="dim")
    table.add_column("predicts", overflow="fold")
    table.add_column("prob", justify="right")
    table.add_column("final's rank", justify="right")
    table.add_column("final's prob", justify="right")
    if any(len(line.top) > 1 for line in lines):
        table.add_column("next candidates", overflow="ellipsis", no_wrap=True)
    for line in lines:
        best = line.top[0]
        is_final = best.token_id == final.token_id
        cells: list[Text | str] = [
            str(line.layer),
            _label(best),
            f"{best.prob:.2%}",
            str(line.final_rank),
            f"{line.final_prob:.2%}",
        ]
        if len(table.columns) > 5:
            rest = Text()
            for i, token in enumerate(line.top[1:]):
                if i:
                    rest.append("  ")
                rest.append(_label(token))
                rest.append(f" {token.prob:.1%}", style="dim")
            cells.append(rest)
        table.add_row(*cells, style="bold" if is_final else None)
    return table


def lens_view(lines: Sequence[LensLine], final: LensToken, *, context_tail: bytes) -> Group:
    """A heading, the table, and a line on the model's final prediction."""
    heading = Text("logit lens · next token after “", style="bold")
    heading.append(visible_piece(context_tail))
    heading.append("”")
    first = next((line.layer for line in lines if line.top[0].token_id == final.token_id), None)
    summary = Text("final prediction: ", style="dim")
    summary.append(_label(final))
    summary.append(f" {final.prob:.2%}", style="dim")
    if first is not None:
        summary.append(f" · first the top token after block {first}", style="dim")
    return Group(heading, lens_table(lines, final), summary)
