"""Output renderers: they take text pieces and stats, never an engine.

``PlainWriter`` streams raw text (pipes, ``--plain``); ``StreamingMarkdown`` renders
Markdown while it streams to a terminal; ``format_stats`` is the one-line summary;
``make_console`` builds a Rich console that matches the I/O Environment.
``StreamingMarkdown`` (Rich's Markdown, Live, Pygments: ~50 ms) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmcli.render.console import make_console
from llmcli.render.plain import PlainWriter
from llmcli.render.stats import format_stats

if TYPE_CHECKING:
    from llmcli.render.markdown import StreamingMarkdown

__all__ = ["PlainWriter", "StreamingMarkdown", "format_stats", "make_console"]


def __getattr__(name: str) -> Any:
    if name == "StreamingMarkdown":
        from llmcli.render.markdown import StreamingMarkdown

        return StreamingMarkdown
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
