"""The drawing parts of a streamed Markdown answer: the live area and what feeds it.

:class:`~llmcli.render.markdown.StreamingMarkdown` decides what is final and what is
still open; the pieces here draw, at a bounded cost: the open block cropped to the
terminal (:class:`OpenBlockView`, cached per state version), an open code fence
highlighted line by line (:class:`FencePreview`), a final chunk rendered the way Rich
renders it inside the whole document (:class:`AfterBlock`), and the redraw thread with
its CPU budget (:class:`Ticker`). They take callables, not the streamer, so each can be
read and driven on its own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown
from rich.segment import Segment
from rich.syntax import Syntax, SyntaxTheme

Lines = list[list[Segment]]


class AfterBlock:
    """Markdown rendered as Rich renders it after a block that sets the blank-line flag.

    Rich puts a blank line before a top-level element when the element closed just
    before it left a flag set (a rule clears it), unless the element's own children
    set the flag (a list always starts with one). Rendering ``PREFIX + text`` and
    dropping the prefix's line lets Rich make that decision itself, as in the whole
    document.
    """

    PREFIX = "x\n\n"
    PREFIX_LINES = 1

    def __init__(self, markdown: Markdown) -> None:
        self.markdown = markdown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(
            self.markdown, options.update(height=None), pad=False, new_lines=True
        )
        for line in lines[self.PREFIX_LINES :]:
            yield from line


@dataclass
class OpenFence:
    """The open tail (from its first line) is this top-level fence, not closed yet."""

    marker: str
    info: str
    indent: int
    """Spaces before the opening marker; CommonMark removes as many from each code line."""
    renderer: FencePreview = field(repr=False)


class FencePreview:
    """An open code block drawn line by line, each complete line rendered once.

    Re-rendering a whole code block through Rich costs ~0.5 ms a line, so a 25-line
    preview redrawn at 12 Hz would cost more CPU than the model. Lines are highlighted
    one by one and cached; only the line being written is rendered again. A line
    inside a multi-line string may be coloured differently until the block completes
    and is printed whole (exactly as Rich prints it).
    """

    def __init__(self, info: str, theme: SyntaxTheme) -> None:
        self.theme = theme
        name = info.partition(" ")[0] or "text"
        self.lexer: Lexer | str = name
        with contextlib.suppress(ClassNotFound):
            # Rich's own lexer options (Syntax.lexer), looked up once instead of per line.
            self.lexer = get_lexer_by_name(name, stripnl=False, ensurenl=True, tabsize=4)
        self._cache: dict[tuple[str, int], Lines] = {}

    def _syntax(self, code: str) -> Syntax:
        return Syntax(code, self.lexer, theme=self.theme, word_wrap=True, padding=(0, 1))

    def line(self, console: Console, options: ConsoleOptions, code: str, cache: bool) -> Lines:
        key = (code, options.max_width)
        lines = self._cache.get(key)
        if lines is None:
            lines = console.render_lines(self._syntax(code), options, pad=False)
            if cache:
                self._cache[key] = lines
        return lines

    def render(
        self,
        console: Console,
        options: ConsoleOptions,
        code_lines: list[str],
        partial: str,
        complete: bool,
        max_lines: int,
    ) -> Lines:
        """The block's last ``max_lines`` lines; ``complete``: ``code_lines`` start at the top."""
        pad = self.line(console, options, "", cache=True)
        out: Lines = [*pad]  # bottom padding
        sources = [(line, True) for line in code_lines]
        if partial:
            sources.append((partial, False))
        while sources and not sources[-1][0].strip():  # Rich strips trailing blank lines
            sources.pop()
        for code, cacheable in reversed(sources):
            if len(out) >= max_lines:
                break
            out[:0] = self.line(console, options, code, cacheable)
        else:
            if complete:
                out[:0] = pad  # top padding
        return out[-max_lines:]


class OpenBlockView:
    """The live area: the open block rendered, cropped to the terminal from the top.

    Live keeps this object and renders it on each refresh and whenever something is
    printed above it, so it reads the current state then. The result is cached by
    state version, which bounds rendering work to the refresh rate.
    """

    def __init__(
        self, version: Callable[[], int], render: Callable[[Console, ConsoleOptions, int], Lines]
    ) -> None:
        self._version = version
        self._render = render
        self._key: tuple[int, int, int] | None = None
        self._lines: Lines = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        max_lines = max(1, options.size.height - 1)
        key = (self._version(), options.max_width, max_lines)
        if key != self._key:
            # Soft wrap (no_wrap) would let the terminal wrap lines Rich counted as
            # one, and the live area would then erase too few lines: always wrap.
            render_options = options.update(height=None, no_wrap=False, overflow=None)
            self._lines = self._render(console, render_options, max_lines)
            self._key = key
        new_line = Segment.line()
        for index, line in enumerate(self._lines):
            if index:
                yield new_line
            yield from line


class Ticker(threading.Thread):
    """Redraws the live area at a bounded rate, only when the text changed, and within
    a CPU budget: after a redraw that took ``t`` seconds the next one waits at least
    ``t / MAX_SHARE``, so a block that is slow to render (a big table) is redrawn
    less often instead of competing with the model for the CPU."""

    MAX_SHARE = 0.03

    def __init__(
        self, version: Callable[[], int], refresh: Callable[[], None], interval: float
    ) -> None:
        super().__init__(name="llmcli-markdown-refresh", daemon=True)
        self._version = version
        self._refresh = refresh
        self._interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        drawn, not_before = -1, 0.0
        while not self._done.wait(self._interval):
            version = self._version()
            started = time.perf_counter()
            if version != drawn and started >= not_before:
                drawn = version
                self._refresh()
                not_before = started + (time.perf_counter() - started) / self.MAX_SHARE

    def stop(self) -> None:
        self._done.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join()
