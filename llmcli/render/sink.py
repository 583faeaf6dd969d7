"""Where an answer streams to: Markdown in a terminal, raw text everywhere else.

``ask`` and the chat REPL make the same choice, so it is made here once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from llmcli.context import Environment

DEFAULT_CODE_THEME = "monokai"


class AnswerSink(Protocol):
    def feed(self, text: str) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


@runtime_checkable
class TokenSink(Protocol):
    """A sink that shows each token with its probability (``--show-probs``)."""

    def feed(self, text: str) -> None: ...
    def feed_token(self, text: str, logprob: float | None) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...


def wants_markdown(env: Environment, *, plain: bool) -> bool:
    """Markdown only on a real terminal, unless ``--plain`` or ``TERM=dumb``."""
    return not plain and bool(env.stdout_isatty) and env.environ.get("TERM") != "dumb"


def open_answer_sink(
    env: Environment, *, plain: bool = False, code_theme: str | None = None
) -> AnswerSink:
    """A sink for one answer (the Markdown live area starts with the first piece).

    Raw text to a terminal drops control characters the model produced (an answer
    holding ``ESC[2J`` would clear the screen); in a pipe the bytes pass unchanged.
    """
    if not wants_markdown(env, plain=plain):
        from llmcli.render.plain import PlainWriter

        return PlainWriter(env.stdout, strip_controls=bool(env.stdout_isatty))
    from llmcli.render.console import make_console
    from llmcli.render.markdown import StreamingMarkdown
    from llmcli.render.sanitize import VisibleSink

    markdown = StreamingMarkdown(make_console(env), code_theme=code_theme or DEFAULT_CODE_THEME)
    # Rich passes ESC and C1 controls through to the terminal: make them visible first.
    return QuietSink(VisibleSink(markdown), env)


class QuietSink:
    """A terminal sink during which Ctrl-C cannot draw over the live area (see ttymode)."""

    def __init__(self, sink: AnswerSink, env: Environment) -> None:
        from llmcli.render.ttymode import QuietInterrupts

        self._sink = sink
        self._quiet = QuietInterrupts(env.stdout)

    def feed(self, text: str) -> None:
        self._sink.feed(text)

    def finish(self) -> None:
        try:
            self._sink.finish()
        finally:
            self._quiet.restore()

    def abort(self) -> None:
        try:
            self._sink.abort()
        finally:
            self._quiet.restore()
