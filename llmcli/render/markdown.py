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
Rich prints it inside the whole document (see :class:`_AfterBlock`), so the console
ends up holding exactly ``console.print(AnswerMarkdown(full_text))`` (Rich's
Markdown with HTML-like text shown as written). The one known
exception is a link reference definition (``[x]: url``), which can change links in
blocks printed before it arrived.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.syntax import Syntax, SyntaxTheme

DEFAULT_CODE_THEME = "monokai"

_FENCE_CANDIDATE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\n?")
"""A line that may close a fence; the parser confirms before anything is printed."""

_FINAL_ALONE = {"hr", "heading_open"}
"""Block types that nothing after them can change (a closed fence is checked apart)."""

Lines = list[list[Segment]]


def _answer_parser() -> MarkdownIt:
    """Rich's parser configuration with raw HTML off: tags are text, shown as written."""
    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")


def _block_parser() -> MarkdownIt:
    """The answer parser, block rules only: inline parsing cannot move a block edge."""
    return _answer_parser().disable("inline")


class AnswerMarkdown(Markdown):
    """Rich's Markdown, except that HTML-like text is shown instead of dropped.

    Rich parses raw HTML (CommonMark allows it) and then skips every HTML token it
    cannot draw, so ``<<The History of Music>>`` came out as ``<>`` and an HTML block
    vanished. A model's answer is text for a terminal, not a web page: with HTML
    parsing off, markdown-it keeps tags as literal text.
    """

    _parser = _answer_parser()

    def __init__(self, markup: str, code_theme: str = DEFAULT_CODE_THEME) -> None:
        super().__init__("", code_theme=code_theme)  # Rich's parse of "" costs nothing
        self.markup = markup
        self.parsed = self._parser.parse(markup)


def _normalize_newlines(text: str) -> str:
    """Read ``\\r\\n`` and ``\\r`` as ``\\n``, as markdown-it does, so line numbers agree."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class _Block:
    """A top-level block of the open tail: its line range and how to tell it is closed."""

    kind: str
    start: int
    end: int
    markup: str
    info: str
    content: str

    @property
    def new_line(self) -> bool:
        """Whether Rich sets its blank-line-before-next flag after this block (not for a rule)."""
        return self.kind != "hr"

    def is_final(self) -> bool:
        """True when no later line can change this block, though nothing follows it yet."""
        if self.kind == "fence":
            # markdown-it leaves the closing line out of ``content``: a closed fence has
            # two lines (opener and closer) more than its content, an open one has one.
            return self.end - self.start - self.content.count("\n") == 2
        return self.kind in _FINAL_ALONE


def _top_level_blocks(tokens: list[Token]) -> list[_Block]:
    return [
        _Block(tok.type, tok.map[0], tok.map[1], tok.markup, tok.info, tok.content)
        for tok in tokens
        if tok.level == 0 and tok.nesting >= 0 and tok.map is not None
    ]


@dataclass(frozen=True)
class _OpenList:
    """The open tail is a list: where its items start, to draw only the last ones."""

    ordered: bool
    start: int
    item_starts: list[int]
    """Tail line index of each top-level item's first line."""

    @property
    def kind(self) -> str:
        return "ordered_list_open" if self.ordered else "bullet_list_open"

    def with_items(self, from_last: list[int]) -> _OpenList:
        """This list with its last item's starts replaced by ``from_last`` (it begins there)."""
        return _OpenList(self.ordered, self.start, [*self.item_starts[:-1], *from_last])

    @classmethod
    def find(cls, tokens: list[Token], cut: int) -> _OpenList | None:
        """The list that starts the tail once ``cut`` lines are gone, if the last block is one."""
        opener = next(
            (
                tok
                for tok in reversed(tokens)
                if tok.level == 0 and tok.nesting == 1 and tok.map is not None
            ),
            None,
        )
        if opener is None or opener.type not in ("bullet_list_open", "ordered_list_open"):
            return None
        assert opener.map is not None
        starts = [
            tok.map[0] - cut
            for tok in tokens
            if tok.type == "list_item_open"
            and tok.level == 1
            and tok.map is not None
            and tok.map[0] >= opener.map[0]
        ]
        ordered = opener.type == "ordered_list_open"
        return cls(ordered, int(opener.attrs.get("start", 1)), starts)


@dataclass(frozen=True)
class _Chunk:
    """Final blocks cut from the tail, waiting to be printed."""

    text: str
    has_blocks: bool
    new_line_after: bool

    @classmethod
    def of(cls, text: str, blocks: list[_Block]) -> _Chunk:
        return cls(text, bool(blocks), blocks[-1].new_line if blocks else False)


class _AfterBlock:
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
class _OpenFence:
    """The open tail (from its first line) is this top-level fence, not closed yet."""

    marker: str
    info: str
    indent: int
    """Spaces before the opening marker; CommonMark removes as many from each code line."""
    renderer: _FencePreview = field(repr=False)


class _FencePreview:
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


class _OpenBlockView:
    """The live area: the open block rendered, cropped to the terminal from the top.

    Live keeps this object and renders it on each refresh and whenever something is
    printed above it, so it reads the current state then. The result is cached by
    state version, which bounds rendering work to the refresh rate.
    """

    def __init__(self, owner: StreamingMarkdown) -> None:
        self._owner = owner
        self._key: tuple[int, int, int] | None = None
        self._lines: Lines = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        max_lines = max(1, options.size.height - 1)
        key = (self._owner.version, options.max_width, max_lines)
        if key != self._key:
            # Soft wrap (no_wrap) would let the terminal wrap lines Rich counted as
            # one, and the live area would then erase too few lines: always wrap.
            render_options = options.update(height=None, no_wrap=False, overflow=None)
            self._lines = self._owner._render_open_block(console, render_options, max_lines)
            self._key = key
        new_line = Segment.line()
        for index, line in enumerate(self._lines):
            if index:
                yield new_line
            yield from line


class _Ticker(threading.Thread):
    """Redraws the live area at a bounded rate, only when the text changed, and within
    a CPU budget: after a redraw that took ``t`` seconds the next one waits at least
    ``t / MAX_SHARE``, so a block that is slow to render (a big table) is redrawn
    less often instead of competing with the model for the CPU."""

    MAX_SHARE = 0.03

    def __init__(self, owner: StreamingMarkdown, interval: float) -> None:
        super().__init__(name="llmcli-markdown-refresh", daemon=True)
        self._owner = owner
        self._interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        drawn, not_before = -1, 0.0
        while not self._done.wait(self._interval):
            version = self._owner.version
            started = time.perf_counter()
            if version != drawn and started >= not_before:
                drawn = version
                self._owner.refresh()
                not_before = started + (time.perf_counter() - started) / self.MAX_SHARE

    def stop(self) -> None:
        self._done.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join()


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
        self._parser = _block_parser()
        self._lock = threading.Lock()  # guards the text state; held briefly, never to draw
        self._draw_lock = threading.RLock()  # orders every write to the console
        self._lines: list[str] = []  # complete lines of the open tail, each ending in "\n"
        self._partial = ""  # the incomplete last line
        self._held_cr = False  # a trailing "\r" whose "\n" may come with the next piece
        self._fence: _OpenFence | None = None
        self._list: _OpenList | None = None
        self._unprinted: list[_Chunk] = []  # cut from the tail, not yet on the console
        self._version = 0
        self._printed_any = False  # printing state: what the console holds
        self._blank_before_next = False
        self._tail_after_block = False  # the same once every cut chunk is printed
        self._done = False
        self._view = _OpenBlockView(self)
        self._ticker = _Ticker(self, 1.0 / refresh_per_second) if auto_refresh else None
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
        text = _normalize_newlines(text)
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
                blocks = _top_level_blocks(self._parser.parse(rest))
                self._unprinted.append(_Chunk.of(rest, blocks))
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
        blocks = _top_level_blocks(tokens)
        if len(blocks) != 1 or blocks[0].kind != open_list.kind or blocks[0].start != 0:
            return False
        found = _OpenList.find(tokens, -last_start)
        if found is None:
            return False
        with self._lock:
            self._list = open_list.with_items(found.item_starts)
        return True

    def _may_close_fence(self, first_new: int) -> bool:
        assert self._fence is not None
        marker = self._fence.marker
        for line in self._lines[first_new:]:
            match = _FENCE_CANDIDATE.fullmatch(line)
            if match and match[1][0] == marker[0] and len(match[1]) >= len(marker):
                return True
        return False

    def _cut(self) -> bool:
        """Move the final blocks from the tail to ``_unprinted`` (called under the lock)."""
        tokens = self._parser.parse("".join(self._lines))
        blocks = _top_level_blocks(tokens)
        if not blocks:
            return False
        last = blocks[-1]
        cut = last.end if last.is_final() else last.start
        self._list = _OpenList.find(tokens, cut) if cut == last.start else None
        if cut:
            chunk = _Chunk.of("".join(self._lines[:cut]), [b for b in blocks if b.start < cut])
            self._unprinted.append(chunk)
            if chunk.has_blocks:
                self._tail_after_block = chunk.new_line_after
            self._lines = self._lines[cut:]
            self._version += 1
        if last.kind == "fence" and cut == last.start:
            if self._fence is None:
                opener = self._lines[0]
                indent = len(opener) - len(opener.lstrip(" "))
                preview = _FencePreview(last.info, self._theme)
                self._fence = _OpenFence(last.markup, last.info, indent, preview)
        else:
            self._fence = None
        return cut > 0

    # -- drawing --------------------------------------------------------------------

    def _markdown(self, text: str, after_block: bool) -> RenderableType:
        """``text`` rendered as it renders in the whole answer, after what was printed."""
        if after_block:
            return _AfterBlock(
                AnswerMarkdown(_AfterBlock.PREFIX + text, code_theme=self.code_theme)
            )
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
        code = [_strip_indent(line[:-1], fence.indent) for line in code]
        partial = _strip_indent(partial, fence.indent)
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
        open_list: _OpenList,
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


def _strip_indent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces, as CommonMark does inside an indented fence."""
    if not indent:
        return line
    stripped = line.lstrip(" ")
    return line[min(indent, len(line) - len(stripped)) :]
