"""``llmcli models …``: the sub-application model-management commands register on."""

from __future__ import annotations

import typer

from llmcli.cli.base import app

models_app = typer.Typer(
    name="models",
    help="List, inspect and remove models in the local store.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
