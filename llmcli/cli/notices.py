"""Dim notices on stderr, shared by the commands that load a model.

Kept apart from ``cli/ask.py`` so that ``cli/each.py``, ``cli/inspect.py`` and
``cli/embed.py`` can use them without an import circle through ``ask``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmcli.context import Environment
    from llmcli.engine.base import Engine


def notify(env: Environment, message: str) -> None:
    """A dim notice on stderr (plain in a pipe)."""
    from llmcli.render.console import make_console
    from llmcli.render.sanitize import visible

    make_console(env, stderr=True).print(
        visible(message), style="dim", markup=False, highlight=False
    )


def show_notices(env: Environment, engine: Engine) -> None:
    for notice in engine.notices:
        notify(env, f"note: {notice}")
