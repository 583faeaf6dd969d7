"""The root Typer application and its groups, built on demand (no global app to decorate).

Commands are plain functions in their modules; :mod:`llmcli.cli.app` registers them
all in one table (as huggingface_hub's ``hf`` CLI does), so importing a command
module registers nothing and no module needs the app.
"""

from __future__ import annotations

import typer

from llmcli import __version__
from llmcli.cli.helpfmt import Group
from llmcli.context import Environment

HELP = "Run quantized decoder LLMs locally: ask, chat, pull models, and look inside the decoder."


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"llmcli {__version__}")
        raise typer.Exit(0)


def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version_callback,
        is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Run quantized decoder LLMs locally: ask, chat, pull models, and look inside the decoder."""
    if not isinstance(ctx.obj, Environment):
        ctx.obj = Environment()  # one per run, passed down to every command


def new_app() -> typer.Typer:
    app = typer.Typer(
        name="llmcli",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        cls=Group,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    return app


def new_group(name: str, help: str) -> typer.Typer:
    return typer.Typer(name=name, help=help, no_args_is_help=True, cls=Group)


def environment(ctx: typer.Context) -> Environment:
    """The run's one :class:`Environment` (built by the root callback or given to ``run``)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Environment):
        root.obj = Environment()
    env: Environment = root.obj
    return env
