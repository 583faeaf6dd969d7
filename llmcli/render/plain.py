"""Raw text output for pipes and ``--plain``: every piece is written and flushed at once."""

from __future__ import annotations

import re
from typing import IO

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 controls except tab and newline, DEL and the C1 controls (8-bit CSI, OSC, DCS...): what
can move a terminal's cursor or reconfigure it."""


class PlainWriter:
    """Write text pieces to ``stream`` unchanged, flushing after each one.

    Flushing per piece matters in a pipe (``llmcli ask ... | tee``), where Python
    would otherwise block-buffer the answer until the end. The writer never adds
    escape codes. ``strip_controls=True`` removes control characters that the model
    itself produced (an answer containing ``ESC[2J`` would clear a terminal); use it
    when the stream is a terminal, never in a pipe where bytes must pass unchanged.
    """

    def __init__(
        self, stream: IO[str], *, final_newline: bool = True, strip_controls: bool = False
    ) -> None:
        self.stream = stream
        self.final_newline = final_newline
        self.strip_controls = strip_controls
        self._last = ""
        self._finished = False

    def feed(self, text: str) -> None:
        if self.strip_controls:
            text = _CONTROL.sub("", text)
        if not text:
            return
        self.stream.write(text)
        self.stream.flush()
        self._last = text[-1]

    def finish(self) -> None:
        """End on a new line (if ``final_newline``) so the shell prompt starts cleanly."""
        if self._finished:
            return
        self._finished = True
        if self.final_newline and self._last not in ("", "\n"):
            self.stream.write("\n")
        self.stream.flush()

    abort = finish

    def __enter__(self) -> PlainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
