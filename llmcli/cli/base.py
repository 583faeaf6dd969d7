"""The Typer application object that every command module registers on.

Command modules do ``from llmcli.cli.base import app`` and decorate functions;
``llmcli.cli.app`` imports them all and owns the process boundary (``main``).
"""

from __future__ import annotations

import typer

from llmcli import __version__

app = typer.Typer(
    name="llmcli",
    help="Run quantized decoder LLMs locally: ask, chat, pull models, and look inside the decoder.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"llmcli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Run quantized decoder LLMs locally: ask, chat, pull models, and look inside the decoder."""
