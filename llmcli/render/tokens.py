"""Drawing what the decoder sees and predicts: token tables, next-token tables, confidence colours.

Everything here takes plain values (ids, bytes, log-probabilities), never an engine.
A token is shown as its bytes decoded as UTF-8 with whitespace made visible
(``␣`` space, ``↵`` newline, ``⇥`` tab), because "hello" and " hello" are different
tokens and the difference is invisible otherwise; bytes that are only part of a
character (emoji and CJK are often split across tokens) are shown as ``<0xF0>``.
Cells are Rich ``Text`` objects, so a token like ``[/b]`` is never read as markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from llmcli.context import Environment

VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters a model may produce: never sent raw to a terminal."""

SPECIAL_STYLE = "bold magenta"
PARTIAL_STYLE = "cyan"

# Probability bands for ``ask --show-probs``: (lowest probability, style, colour name, range).
PROB_BANDS: tuple[tuple[float, str, str, str], ...] = (
    (0.9, "green", "green", "≥90%"),
    (0.5, "yellow", "yellow", "50–90%"),
    (0.2, "dark_orange", "orange", "20–50%"),
    (0.0, "red", "red", "<20%"),
)


# -- one token as text ----------------------------------------------------------


def _visible_text(text: str) -> str:
    for char, mark in VISIBLE.items():
        text = text.replace(char, mark)
    return _CONTROL.sub(lambda m: f"<0x{ord(m.group()):02X}>", text)


def visible_piece(data: bytes) -> Text:
    """A token's bytes as readable text: whitespace marked, split characters as ``<0xNN>``."""
    out = Text()
    while data:
        try:
            out.append(_visible_text(data.decode("utf-8")))
            break
        except UnicodeDecodeError as exc:
            out.append(_visible_text(data[: exc.start].decode("utf-8")))
            bad = data[exc.start : exc.end]
            out.append("".join(f"<0x{b:02X}>" for b in bad), style=PARTIAL_STYLE)
            data = data[exc.end :]
    return out


def piece_text(data: bytes) -> str:
    """A token's bytes for JSON: the text, with U+FFFD where a character is split."""
    return data.decode("utf-8", errors="replace")


# -- tokenize --------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    position: int
    token_id: int
    piece: bytes
    special: bool = False  # a control token (BOS, <|im_start|>): rendered as written


def token_label(row: TokenRow) -> Text:
    if row.special:
        return Text(piece_text(row.piece), style=SPECIAL_STYLE)
    return visible_piece(row.piece)


def token_table(rows: Sequence[TokenRow]) -> Table:
    """Position, id and text piece of each token."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("pos", justify="right", style="dim")
    table.add_column("id", justify="right")
    table.add_column("token", overflow="fold")
    for row in rows:
        table.add_row(str(row.position), str(row.token_id), token_label(row))
    return table


def tokenize_caption(count: int, *, bos_added: bool, eos_added: bool) -> str:
    noun = "token" if count == 1 else "tokens"
    yes = {True: "yes", False: "no"}
    return f"{count:,} {noun} · BOS added: {yes[bos_added]} · EOS added: {yes[eos_added]}"


# -- next ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    token_id: int
    piece: bytes
    logprob: float
    special: bool = False

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)


@dataclass(frozen=True)
class NextStep:
    """One step of the autoregressive loop: the distribution after ``context_tail``."""

    step: int
    position: int  # index the next token will take in the sequence
    context_tail: bytes
    candidates: tuple[Candidate, ...]  # most likely first; [0] is the argmax
    end_of_generation: bool = False  # the argmax ends the answer

    @property
    def covered(self) -> float:
        """Probability mass of the candidates shown."""
        return sum(c.prob for c in self.candidates)


BAR_WIDTH = 20


def _bar(prob: float) -> str:
    cells = prob * BAR_WIDTH
    full = int(cells)
    return "█" * full + ("▌" if cells - full >= 0.5 else "")


def next_token_view(step: NextStep) -> Group:
    """A heading (step, position, the context so far), the candidates table, the mass shown."""
    heading = Text(f"step {step.step} · position {step.position} · after “", style="bold")
    heading.append(visible_piece(step.context_tail))
    heading.append("”")
    summary = f"top {len(step.candidates)} hold {step.covered:.1%} of the probability"
    if step.end_of_generation:
        summary += " · the argmax ends the answer"
    return Group(heading, next_token_table(step), Text(summary, style="dim"))


def next_token_table(step: NextStep) -> Table:
    """The top candidates for the next token, with probability and log-probability."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", justify="right")
    table.add_column("token", overflow="fold")
    table.add_column("prob", justify="right")
    table.add_column("logprob", justify="right")
    table.add_column("", style="blue", no_wrap=True)
    for rank, cand in enumerate(step.candidates, 1):
        label = (
            Text(piece_text(cand.piece), style=SPECIAL_STYLE)
            if cand.special
            else visible_piece(cand.piece)
        )
        table.add_row(
            "▶" if rank == 1 else "",
            str(rank),
            str(cand.token_id),
            label,
            f"{cand.prob:.2%}",
            f"{cand.logprob:.3f}",
            _bar(cand.prob),
            style="bold" if rank == 1 else None,
        )
    return table


# -- ask --show-probs --------------------------------------------------------------


def prob_style(logprob: float | None) -> str | None:
    """The colour of a token whose log-probability is ``logprob`` (None: no colour)."""
    if logprob is None:
        return None
    prob = math.exp(logprob)
    for floor, style, _, _ in PROB_BANDS:
        if prob >= floor:
            return style
    return PROB_BANDS[-1][1]


def probability_legend() -> Text:
    """``token probability: green ≥90% · yellow 50–90% · …`` (readable without colour too)."""
    legend = Text("token probability: ", style="dim")
    for i, (_, style, name, label) in enumerate(PROB_BANDS):
        if i:
            legend.append(" · ", style="dim")
        legend.append(f"{name} {label}", style=style)
    return legend


class ProbabilityStream:
    """Stream an answer to a terminal, each token coloured by its probability.

    It is a sink like :class:`~llmcli.render.plain.PlainWriter` (``feed``, ``finish``,
    ``abort``) plus ``feed_token(text, logprob)``. Text is printed as it comes with
    no markdown rendering (colour and markdown styles would fight), control
    characters removed, and the terminal doing the wrapping.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last = ""
        self._finished = False

    def feed(self, text: str) -> None:
        self.feed_token(text, None)

    def feed_token(self, text: str, logprob: float | None) -> None:
        text = _CONTROL.sub("", text)
        if not text:
            return
        self.console.print(Text(text, style=prob_style(logprob) or ""), end="", soft_wrap=True)
        self._last = text[-1]

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._last not in ("", "\n"):
            self.console.print()
        self.console.file.flush()

    abort = finish


def open_probability_stream(env: Environment) -> ProbabilityStream | None:
    """A colouring sink for a colour terminal, with the legend on stderr; else None.

    In a pipe, with ``TERM=dumb`` or with ``NO_COLOR``, the answer is printed as it
    would be without ``--show-probs`` (the caller's usual sink), so scripts see no change.
    """
    from llmcli.render.console import make_console

    if not env.stdout_isatty or env.environ.get("TERM") == "dumb":
        return None
    errors = make_console(env, stderr=True)
    if env.no_color:
        errors.print("note: --show-probs needs colours, and NO_COLOR is set", style="dim")
        return None
    errors.print(probability_legend())
    return ProbabilityStream(make_console(env))
