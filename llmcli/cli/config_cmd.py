"""``llmcli config path|show|set|unset|edit``: the TOML config file, and what is in force.

``show`` answers "why is this value what it is?": every setting with its value and
its source (built-in default, the file, a ``[models.NAME]`` table, or an
``LLMCLI_*`` variable). ``set`` validates the key and value, edits only the one line
(comments stay), and writes atomically. ``path`` and ``edit`` never parse the file,
so they work on a broken one: that is how it gets fixed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from llmcli.cli.base import environment
from llmcli.config import (
    KEYS,
    Settings,
    config_path,
    describe_value,
    format_key,
    format_value,
    load_settings,
    new_config_template,
    parse_key_path,
    read_config,
    set_config_value,
    settings_for_model,
    unset_config_value,
    write_atomic,
)
from llmcli.context import Environment
from llmcli.errors import LlmcliError, UsageError
from llmcli.render.json_out import write_json

KeyArg = Annotated[
    str,
    typer.Argument(
        help="A setting (temperature, ctx, gpu_layers, ...) or models.NAME.KEY.",
        show_default=False,
    ),
]


def path_cmd(cli: typer.Context) -> None:
    """Print the config file's path (it may not exist yet).

    LLMCLI_CONFIG names another file; LLMCLI_HOME moves every llmcli path.
    """
    env = environment(cli)
    env.stdout.write(f"{config_path(env.environ)}\n")


def show(
    cli: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Also apply this model's [models.NAME] table.",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show every setting in force and where it comes from (default, file, environment).

    Examples:

      llmcli config show

      LLMCLI_CTX=8192 llmcli config show --json

      llmcli config show -m qwen
    """
    env = environment(cli)
    settings = load_settings(env.environ)
    if model or settings.model:
        settings = settings_for_model(settings, model or settings.model)
    if json_output:
        write_json(env.stdout, settings_json(settings), indent=2)
        return
    env.stdout.write(settings_text(settings))


def settings_json(settings: Settings) -> dict[str, Any]:
    path = settings.config_path
    return {
        "config_file": str(path) if path else None,
        "config_file_exists": bool(path and path.is_file()),
        "model_table": settings.model_table,
        "settings": {
            name: {"value": getattr(settings, name), "source": settings.source(name)}
            for name in KEYS
        },
        "models": settings.model_tables,
    }


def settings_text(settings: Settings) -> str:
    path = settings.config_path
    state = "" if path and path.is_file() else " (not created yet: 'llmcli config edit')"
    rows = [(name, _shown(name, getattr(settings, name)), settings.source(name)) for name in KEYS]
    width = max(len(value) for _, value, _ in rows)
    width = min(max(width, len("VALUE")), 48)
    lines = [f"Config file: {path}{state}", ""]
    lines.append(f"{'KEY':<15} {'VALUE':<{width}}  SOURCE")
    lines += [f"{name:<15} {value:<{width}}  {source}" for name, value, source in rows]
    if settings.model_tables:
        names = ", ".join(_table_name(name) for name in settings.model_tables)
        lines += ["", f"Per-model tables: {names}"]
        if settings.model_table is None:
            lines.append("(applied when -m names one of them; 'llmcli config show -m NAME')")
    return "\n".join(lines) + "\n"


def _shown(name: str, value: Any) -> str:
    if isinstance(value, str) and name not in ("gpu_layers",):
        return format_value(value)
    return describe_value(KEYS[name], value)


def _table_name(name: str) -> str:
    return f"[models.{format_key(name)}]"


def set_cmd(
    cli: typer.Context,
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="The new value.", show_default=False)],
) -> None:
    """Set one value in the config file (checked, written atomically, comments kept).

    Examples:

      llmcli config set temperature 0.2

      llmcli config set model bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M

      llmcli config set models.qwen.system "Answer in one sentence."
    """
    env = environment(cli)
    key_path = parse_key_path(key)
    result = set_config_value(config_path(env.environ), key_path, value)
    env.stdout.write(f"{key_path.dotted} = {format_value(result.value)}  ({result.path})\n")
    _comments_note(env, result.kept_comments, result.path)


def unset_cmd(cli: typer.Context, key: KeyArg) -> None:
    """Remove one value from the config file (back to the built-in default)."""
    env = environment(cli)
    key_path = parse_key_path(key)
    result = unset_config_value(config_path(env.environ), key_path)
    if result is None:
        env.stderr.write(f"{key_path.dotted} is not set in {config_path(env.environ)}\n")
        return
    env.stdout.write(f"unset {key_path.dotted}  ({result.path})\n")
    _comments_note(env, result.kept_comments, result.path)


def _comments_note(env: Environment, kept: bool, path: Path) -> None:
    if not kept:
        env.stderr.write(
            f"note: {path} was rewritten without its comments "
            "(its layout could not be edited line by line)\n"
        )


def edit(cli: typer.Context) -> None:
    """Open the config file in $VISUAL or $EDITOR (created from a commented template).

    After the editor exits the file is checked; a mistake is reported with its line
    and column (exit status 65).
    """
    env = environment(cli)
    path = config_path(env.environ)
    if not path.exists():
        write_atomic(path, new_config_template())
    command = editor_command(env.environ)
    try:
        status = subprocess.call([*command, str(path)])
    except OSError as exc:
        raise UsageError(
            f"cannot run editor {command[0]!r}: {exc.strerror or exc}",
            hint="set EDITOR to an installed editor, e.g. EDITOR=nano",
        ) from exc
    if status != 0:
        raise LlmcliError(f"editor {command[0]!r} exited with status {status}")
    read_config(path)  # raises ConfigError with line and column
    env.stderr.write(f"{path}: ok\n")


def editor_command(environ: dict[str, str]) -> list[str]:
    """``$VISUAL``, then ``$EDITOR`` (may carry arguments: ``code -w``), then nano or vi."""
    for name in ("VISUAL", "EDITOR"):
        value = environ.get(name, "").strip()
        if value:
            return shlex.split(value)
    for fallback in ("nano", "vi"):
        if shutil.which(fallback, path=environ.get("PATH", os.defpath)):
            return [fallback]
    raise UsageError("no editor found", hint="set EDITOR, e.g. EDITOR=nano")
