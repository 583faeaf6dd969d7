"""Server-sent events (the ``text/event-stream`` format) read from a byte stream.

OpenAI-compatible servers stream ``data: {json}`` events separated by blank
lines and end with ``data: [DONE]``. The parser follows the WHATWG rules where
real servers differ (CRLF, CR or LF line ends, ``data:`` with or without the
space, ``: ping`` comment lines from sse-starlette, unknown fields ignored) and
refuses what cannot be an event stream at all — a line of JSON without a
field name, a line or an event that never ends, bytes that are not UTF-8 — with a
:class:`SSEFormatError` that names the line, so a broken proxy or a server
speaking another protocol gets a clear message instead of a silent empty answer.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAX_LINE_CHARS = 1 << 20
"""A line longer than this is refused (a server that never sends a newline)."""
MAX_EVENT_CHARS = 1 << 22
"""An event longer than this is refused (``data:`` lines that never end with a blank line)."""

_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_EXCERPT = 60


class SSEFormatError(Exception):
    """The stream is not a valid event stream; ``line_no`` is 1-based."""

    def __init__(self, reason: str, line_no: int, line: str = "") -> None:
        excerpt = line if len(line) <= _EXCERPT else line[:_EXCERPT] + "…"
        where = f"line {line_no}: {reason}"
        super().__init__(f"{where}: {excerpt!r}" if line else where)
        self.reason = reason
        self.line_no = line_no
        self.line = line


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None


def iter_lines(chunks: Iterable[bytes], *, max_line: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Split a byte stream into decoded lines (without their CR, LF or CRLF ends).

    A trailing line without an end is yielded too; the event parser then decides
    whether it completes anything (it does not: events end at a blank line).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    buffer = ""
    line_no = 0
    after_cr = False
    for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise SSEFormatError("the stream is not UTF-8", line_no + 1, buffer) from exc
        if not text:
            continue
        if after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across two chunks
        after_cr = text.endswith("\r")
        buffer += text
        *complete, buffer = re.split(r"\r\n|\r|\n", buffer)
        for line in complete:
            line_no += 1
            yield line
        if len(buffer) > max_line:
            raise SSEFormatError(f"line longer than {max_line} characters", line_no + 1, buffer)
    try:
        buffer += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise SSEFormatError("the stream ends inside a UTF-8 character", line_no + 1) from exc
    if buffer:
        yield buffer


class SSEParser:
    """Feed lines; an event comes out at each blank line that ends one."""

    def __init__(self, *, max_event: int = MAX_EVENT_CHARS) -> None:
        self._data: list[str] = []
        self._size = 0
        self._max_event = max_event
        self._event = ""
        self._id: str | None = None
        self.line_no = 0

    def feed(self, line: str) -> SSEEvent | None:
        self.line_no += 1
        if self.line_no == 1:
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive pings
        name, sep, value = line.partition(":")
        if not _FIELD.match(name):
            raise SSEFormatError("not a server-sent event field", self.line_no, line)
        value = value.removeprefix(" ") if sep else ""
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self._max_event:
                raise SSEFormatError(
                    f"event longer than {self._max_event} characters", self.line_no, line
                )
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # "retry" and unknown fields are ignored, as the standard says

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event or "message", id=self._id)
        self._data = []
        self._size = 0
        self._event = ""
        return event


def iter_events(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events from lines; an unfinished event at the end (a cut stream) is dropped."""
    parser = SSEParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
