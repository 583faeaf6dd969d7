"""Text from outside (model output, servers, templates, history) made safe for a terminal.

An answer, an error body or a stored message holding ``ESC[2J`` would clear the screen,
``ESC]0;…BEL`` would retitle the window, an 8-bit CSI (U+009B) does the same on terminals
that read C1 controls. Every terminal renderer passes outside text through
:func:`visible` (or :class:`VisibleSink` for streamed answers) first; text written to a
pipe or file is never changed, so piped output stays byte-exact.

C0 controls other than tab and newline become their Unicode "control pictures" (ESC is
shown as ``␛``), DEL as ``␡``, C1 controls as U+FFFD: the reader sees that something was
there without the terminal acting on it.
"""

from __future__ import annotations

import re
from typing import Protocol

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNSAFE_KEEP_CR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


def visible(text: str, *, keep_cr: bool = False) -> str:
    """``text`` with every control character but ``\\n`` and ``\\t`` (and ``\\r`` when
    ``keep_cr``, for renderers that read it as a line end) made visible."""
    pattern = _UNSAFE_KEEP_CR if keep_cr else _UNSAFE
    return pattern.sub(_picture, text)


def has_controls(text: str) -> bool:
    return _UNSAFE.search(text) is not None


class _Sink(Protocol):
    def feed(self, text: str) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


class VisibleSink:
    """An answer sink for a terminal: each piece made :func:`visible`, then passed on.

    Control characters are single code points, so making each streamed piece visible
    on its own gives the same text as doing it to the whole answer. ``\\r`` is kept: the
    Markdown renderer reads it as a line end (``\\r\\n`` split across pieces included).
    """

    def __init__(self, inner: _Sink) -> None:
        self.inner = inner

    def feed(self, text: str) -> None:
        self.inner.feed(visible(text, keep_cr=True))

    def finish(self) -> None:
        self.inner.finish()

    def abort(self) -> None:
        self.inner.abort()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
