"""The one rule for commands that delete something (``models rm``, ``history rm``).

In a terminal they ask first (default: no); anywhere else (a script, a pipe, CI)
they refuse with a usage error (exit 2) unless ``--yes`` is given, so nothing is
deleted by a command that no one could answer.
"""

from __future__ import annotations

import typer

from llmcli.context import Environment
from llmcli.errors import UsageError


def confirm_removal(env: Environment, question: str, *, what: str, yes: bool) -> None:
    """Return when removing ``what`` is confirmed; ``typer.Exit(1)`` when the user says no."""
    if yes:
        return
    if not (env.stdin_isatty and env.stderr_isatty):
        raise UsageError(f"refusing to remove {what} without confirmation", hint="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
