"""Markdown rendered while it streams, at a bounded cost per token.

Rich's ``Markdown(text)`` parses in its constructor, so re-rendering the whole answer
for every token is quadratic. Here the answer is cut into top-level blocks as it
arrives: a block that can no longer change is printed once, above the live area, and
only the open (last) block is redrawn, at most ``refresh_per_second`` times a second.

Block boundaries come from markdown-it-py (the parser Rich uses), run on the open
tail only and only when a line completes (inside an open fence, only when a line
could close it). A top-level block is final once the next one has started
(CommonMark decides each line's block from the lines up to it), or at once for a
closed fence, an ATX/setext heading or a rule. Each final chunk is printed the way
Rich prints it inside the whole document (see
:class:`~llmcli.render.markdown_live.AfterBlock`), so the console ends up holding
exactly ``console.print(AnswerMarkdown(full_text))`` (Rich's Markdown with HTML-like
text shown as written). The one known exception is a link reference definition
(``[x]: url``), which can change links in blocks printed before it arrived.

This module holds the state machine (what arrived, what is final, what is printed);
the block rules are in :mod:`llmcli.render.markdown_blocks`, the live area and the
redraw thread in :mod:`llmcli.render.markdown_live`.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console, ConsoleOptions, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.syntax import Syntax

from llmcli.render.markdown_blocks import (
    FENCE_CANDIDATE,
    Chunk,
    OpenList,
    answer_parser,
    block_parser,
    normalize_newlines,
    strip_indent,
    top_level_blocks,
)
from llmcli.render.markdown_live import (
    AfterBlock,
    FencePreview,
    Lines,
    OpenBlockView,
    OpenFence,
    Ticker,
)

DEFAULT_CODE_THEME = "monokai"


class AnswerMarkdown(Markdown):
    """Rich's Markdown, except that HTML-like text is shown instead of dropped.

    Rich parses raw HTML (CommonMark allows it) and then skips every HTML token it
    cannot draw, so ``<<The History of Music>>`` came out as ``<>`` and an HTML block
    vanished. A model's answer is text for a terminal, not a web page: with HTML
    parsing off, markdown-it keeps tags as literal text.
    """

    _parser = answer_parser()

    def __init__(self, markup: str, code_theme: str = DEFAULT_CODE_THEME) -> None:
        super().__init__("", code_theme=code_theme)  # Rich's parse of "" costs nothing
        self.markup = markup
        self.parsed = self._parser.parse(markup)


class StreamingMarkdown:
    """Render streamed Markdown on ``console``; use as a context manager.

    ``feed(text)`` takes pieces of any size (a token, half a fence marker, part of a
    grapheme); ``finish()`` prints the rest; ``abort()`` (called on an exception,
    e.g. Ctrl-C) prints what arrived so far and leaves the cursor on a new line.
    After ``finish()`` the console holds exactly what ``console.print(AnswerMarkdown(text,
    code_theme=code_theme))`` prints for the whole answer.

    The live area is redrawn by a background thread, ``refresh_per_second`` times a
    second at most and only when text arrived. Rich's own refresh thread is not used:
    it can redraw while a block is printed from the caller's thread, and the two
    renders then disagree on the live area's height (stale lines stay on screen);
    here one lock orders every draw. With ``auto_refresh=False`` the live area is
    redrawn only by :meth:`refresh` and when a block is printed (deterministic, for
    tests and benchmarks).

    On a console that is not an interactive terminal nothing is drawn live: blocks
    are printed as they complete.
    """

    def __init__(
        self,
        console: Console,
        *,
        code_theme: str = DEFAULT_CODE_THEME,
        refresh_per_second: float = 10.0,
        auto_refresh: bool = True,
    ) -> None:
        self.console = console
        self.code_theme = code_theme
        self._theme = Syntax.get_theme(code_theme)
        self._parser = block_parser()
        self._lock = threading.Lock()  # guards the text state; held briefly, never to draw
        self._draw_lock = threading.RLock()  # orders every write to the console
        self._lines: list[str] = []  # complete lines of the open tail, each ending in "\n"
        self._partial = ""  # the incomplete last line
        self._held_cr = False  # a trailing "\r" whose "\n" may come with the next piece
        self._fence: OpenFence | None = None
        self._list: OpenList | None = None
        self._unprinted: list[Chunk] = []  # cut from the tail, not yet on the console
        self._version = 0
        self._printed_any = False  # printing state: what the console holds
        self._blank_before_next = False
        self._tail_after_block = False  # the same once every cut chunk is printed
        self._done = False
        self._view = OpenBlockView(lambda: self._version, self._render_open_block)
        self._ticker = (
            Ticker(lambda: self._version, self.refresh, 1.0 / refresh_per_second)
            if auto_refresh
            else None
        )
        self._live = Live(
            console=console,
            get_renderable=lambda: self._view,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        )

    # -- public API -------------------------------------------------------------

    def __enter__(self) -> StreamingMarkdown:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    @property
    def version(self) -> int:
        """Changes whenever the text on show may have changed."""
        return self._version

    def start(self) -> None:
        """Start the live area (``feed`` does it too)."""
        if self._done:
            raise RuntimeError("StreamingMarkdown is finished")
        if self._live.is_started:
            return
        with self._draw_lock:
            self._live.start()
        if self._ticker is not None and self.console.is_interactive:
            self._ticker.start()

    def feed(self, text: str) -> None:
        """Add a piece of the answer; blocks it completes are printed at once."""
        if not text:
            return
        if not self._live.is_started:
            self.start()
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._held_cr = True
        text = normalize_newlines(text)
        with self._lock:
            self._partial += text
            self._version += 1
            if "\n" not in text:
                return
            *complete, self._partial = self._partial.split("\n")
            first_new = len(self._lines)
            self._lines.extend(line + "\n" for line in complete)
        self._settle(first_new)

    def refresh(self) -> None:
        """Redraw the live area now."""
        with self._draw_lock:
            if self._live.is_started:
                self._live.refresh()

    def finish(self) -> None:
        """Print the open block and stop; the console then holds the whole answer."""
        if self._done:
            return
        self._done = True
        with self._lock:
            rest = "".join(self._lines) + self._partial + ("\n" if self._held_cr else "")
            self._lines, self._partial, self._held_cr = [], "", False
            self._fence, self._list = None, None
            self._version += 1
            if rest:
                blocks = top_level_blocks(self._parser.parse(rest))
                self._unprinted.append(Chunk.of(rest, blocks))
        if self._ticker is not None:
            self._ticker.stop()
        with self._draw_lock:
            self._live.stop()
        self._print_unprinted()

    def abort(self) -> None:
        """Stop after Ctrl-C: keep what arrived (an open fence shows as a code block)."""
        self.finish()

    # -- block boundaries ---------------------------------------------------------

    def _settle(self, first_new: int) -> None:
        """Print the blocks that the lines completed since ``first_new`` made final."""
        if self._fence is not None and not self._may_close_fence(first_new):
            return
        if self._list is not None and self._list_goes_on():
            return
        with self._lock:
            cut = self._cut()
        if cut:
            self._print_unprinted()

    def _list_goes_on(self) -> bool:
        """Whether the open list still holds every line, judged from its last item only.

        Whether a line continues a list, adds an item or ends the list depends on the
        list's last item alone, so parsing from that item's first line keeps the
        work per line bounded by the item, not the list. When the list may have
        ended, the caller parses the whole tail once, for the exact cut.
        """
        open_list = self._list
        assert open_list is not None
        if len(open_list.item_starts) < 2:
            return False
        last_start = open_list.item_starts[-1]
        tokens = self._parser.parse("".join(self._lines[last_start:]))
        blocks = top_level_blocks(tokens)
        if len(blocks) != 1 or blocks[0].kind != open_list.kind or blocks[0].start != 0:
            return False
        found = OpenList.find(tokens, -last_start)
        if found is None:
            return False
        with self._lock:
            self._list = open_list.with_items(found.item_starts)
        return True

    def _may_close_fence(self, first_new: int) -> bool:
        assert self._fence is not None
        marker = self._fence.marker
        for line in self._lines[first_new:]:
            match = FENCE_CANDIDATE.fullmatch(line)
            if match and match[1][0] == marker[0] and len(match[1]) >= len(marker):
                return True
        return False

    def _cut(self) -> bool:
        """Move the final blocks from the tail to ``_unprinted`` (called under the lock)."""
        tokens = self._parser.parse("".join(self._lines))
        blocks = top_level_blocks(tokens)
        if not blocks:
            return False
        last = blocks[-1]
        cut = last.end if last.is_final() else last.start
        self._list = OpenList.find(tokens, cut) if cut == last.start else None
        if cut:
            chunk = Chunk.of("".join(self._lines[:cut]), [b for b in blocks if b.start < cut])
            self._unprinted.append(chunk)
            if chunk.has_blocks:
                self._tail_after_block = chunk.new_line_after
            self._lines = self._lines[cut:]
            self._version += 1
        if last.kind == "fence" and cut == last.start:
            if self._fence is None:
                opener = self._lines[0]
                indent = len(opener) - len(opener.lstrip(" "))
                preview = FencePreview(last.info, self._theme)
                self._fence = OpenFence(last.markup, last.info, indent, preview)
        else:
            self._fence = None
        return cut > 0

    # -- drawing --------------------------------------------------------------------

    def _markdown(self, text: str, after_block: bool) -> RenderableType:
        """``text`` rendered as it renders in the whole answer, after what was printed."""
        if after_block:
            return AfterBlock(AnswerMarkdown(AfterBlock.PREFIX + text, code_theme=self.code_theme))
        return AnswerMarkdown(text, code_theme=self.code_theme)

    def _print_unprinted(self) -> None:
        """Print the cut chunks; a chunk stays queued until printed (Ctrl-C safe)."""
        with self._draw_lock:
            while self._unprinted:
                chunk = self._unprinted[0]
                # Text without blocks (blank lines, link definitions) prints nothing in
                # a whole-document render either; only an empty answer prints it alone.
                if chunk.has_blocks or not self._printed_any:
                    after_block = self._printed_any and self._blank_before_next
                    self.console.print(self._markdown(chunk.text, after_block), soft_wrap=False)
                if chunk.has_blocks:
                    self._printed_any = True
                    self._blank_before_next = chunk.new_line_after
                self._unprinted.pop(0)

    def _render_open_block(
        self, console: Console, options: ConsoleOptions, max_lines: int
    ) -> Lines:
        """The live area's lines: the open block's last ``max_lines`` rendered lines."""
        with self._lock:
            after_block = self._tail_after_block
            fence, partial, open_list = self._fence, self._partial, self._list
            if fence is None:
                source = list(self._lines)
            else:
                # Only the lines that can be on screen: a long code block costs the
                # same to redraw at its end as at its start.
                code = self._lines[1:]
                complete = len(code) <= max_lines
                code = code[-max_lines:]
        if fence is None:
            if open_list is not None and len(source) > 2 * max_lines:
                return self._render_list_end(
                    console, options, source, partial, open_list, max_lines
                )
            text = "".join(source) + partial
            if not text.strip():
                return []
            markdown = self._markdown(text, after_block)
            return console.render_lines(markdown, options, pad=False)[-max_lines:]
        code = [strip_indent(line[:-1], fence.indent) for line in code]
        partial = strip_indent(partial, fence.indent)
        rendered = fence.renderer.render(console, options, code, partial, complete, max_lines)
        if after_block and complete and len(rendered) < max_lines:
            rendered.insert(0, [])  # the blank line Rich puts before the code block
        return rendered

    def _render_list_end(
        self,
        console: Console,
        options: ConsoleOptions,
        lines: list[str],
        partial: str,
        open_list: OpenList,
        max_lines: int,
    ) -> Lines:
        """The last lines of a long open list, rendered from its last items only.

        Rich renders list items independently; an ordered list numbers them from its
        start and sizes the numbers by the last one, which stays the same when the
        first ``k`` items are left out and the start is moved up by ``k``. So the
        tail of a 200-line list costs what its last screenful costs.
        """
        starts = [start for start in open_list.item_starts if start < len(lines)]
        first = len(starts) - 1
        while first > 0 and len(lines) - starts[first] < max_lines:
            first -= 1
        while True:
            text = "".join(lines[starts[first] :]) + partial
            markdown = AnswerMarkdown(text, code_theme=self.code_theme)
            if open_list.ordered:
                opener = next(tok for tok in markdown.parsed if tok.type == "ordered_list_open")
                opener.attrs["start"] = open_list.start + first
            rendered = console.render_lines(markdown, options, pad=False)
            if len(rendered) >= max_lines or first == 0:
                return rendered[-max_lines:]
            first = max(0, 2 * first - len(starts))  # twice as many items
