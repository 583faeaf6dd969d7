"""Build Rich consoles from the I/O :class:`~llmcli.context.Environment`.

One place decides whether a stream gets escape codes: only a real terminal does,
and ``NO_COLOR`` (https://no-color.org) removes colour while keeping bold/italic.
"""

from __future__ import annotations

from rich.console import Console

from llmcli.context import Environment


def make_console(env: Environment, *, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A console on ``env.stdout`` (or ``env.stderr``) that matches the stream.

    ``force_terminal`` follows the Environment's isatty flag in both directions, so a
    pipe never receives escape codes even when ``FORCE_COLOR`` is set, and tests can
    fake a terminal. ``highlight=False`` keeps Rich from colouring numbers and paths
    inside model answers; ``emoji=False`` keeps ``:smile:``-like text literal.

    ``soft_wrap`` stays off by default because Markdown, tables and hints need Rich's
    word wrapping (soft wrap disables it for every renderable in a print). Streamed
    raw text should go through :class:`~llmcli.render.plain.PlainWriter`, or
    ``console.print(piece, end="", soft_wrap=True, markup=False)``, so that the
    terminal, not Rich, wraps pieces it cannot see whole.
    """
    stream = env.stderr if stderr else env.stdout
    isatty = env.stderr_isatty if stderr else env.stdout_isatty
    return Console(
        file=stream,
        force_terminal=bool(isatty),
        no_color=env.no_color,
        highlight=False,
        emoji=False,
        soft_wrap=soft_wrap,
        stderr=stderr,
        _environ=env.environ,
    )
