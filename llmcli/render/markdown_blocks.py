"""Where a streamed Markdown answer's top-level blocks end, and when one is final.

:class:`~llmcli.render.markdown.StreamingMarkdown` prints a block once, when no later
line can change it, so it needs the block edges of the open tail as lines arrive. They
come from markdown-it-py (the parser Rich uses) with the block rules only, and from the
CommonMark rules written down here: a top-level block is final once the next one has
started, or at once for a closed fence, a heading or a rule. Kept apart from the drawing
so the rules can be read (and are tested) as plain functions of text and tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

FENCE_CANDIDATE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\n?")
"""A line that may close a fence; the parser confirms before anything is printed."""

FINAL_ALONE = {"hr", "heading_open"}
"""Block types that nothing after them can change (a closed fence is checked apart)."""


def answer_parser() -> MarkdownIt:
    """Rich's parser configuration with raw HTML off: tags are text, shown as written."""
    return MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")


def block_parser() -> MarkdownIt:
    """The answer parser, block rules only: inline parsing cannot move a block edge."""
    return answer_parser().disable("inline")


def normalize_newlines(text: str) -> str:
    """Read ``\\r\\n`` and ``\\r`` as ``\\n``, as markdown-it does, so line numbers agree."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True)
class Block:
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
        return self.kind in FINAL_ALONE


def top_level_blocks(tokens: list[Token]) -> list[Block]:
    return [
        Block(tok.type, tok.map[0], tok.map[1], tok.markup, tok.info, tok.content)
        for tok in tokens
        if tok.level == 0 and tok.nesting >= 0 and tok.map is not None
    ]


@dataclass(frozen=True)
class OpenList:
    """The open tail is a list: where its items start, to draw only the last ones."""

    ordered: bool
    start: int
    item_starts: list[int]
    """Tail line index of each top-level item's first line."""

    @property
    def kind(self) -> str:
        return "ordered_list_open" if self.ordered else "bullet_list_open"

    def with_items(self, from_last: list[int]) -> OpenList:
        """This list with its last item's starts replaced by ``from_last`` (it begins there)."""
        return OpenList(self.ordered, self.start, [*self.item_starts[:-1], *from_last])

    @classmethod
    def find(cls, tokens: list[Token], cut: int) -> OpenList | None:
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
class Chunk:
    """Final blocks cut from the tail, waiting to be printed."""

    text: str
    has_blocks: bool
    new_line_after: bool

    @classmethod
    def of(cls, text: str, blocks: list[Block]) -> Chunk:
        return cls(text, bool(blocks), blocks[-1].new_line if blocks else False)


def strip_indent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces, as CommonMark does inside an indented fence."""
    if not indent:
        return line
    stripped = line.lstrip(" ")
    return line[min(indent, len(line) - len(stripped)) :]
