"""The process boundary: build the app from its command table, run it, map outcomes to exit codes.

Every command is registered here, explicitly, in the order ``--help`` lists them
(as huggingface_hub's ``hf`` CLI does): command modules define plain functions and
import nothing of this module, so there is no registration by import side effect
and no import circle. This is also the one place where exceptions become messages
and exit codes (:class:`~llmcli.errors.ExitStatus`); everything below raises.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn, get_args

import typer

from llmcli.cli import (
    aliases,
    ask,
    bench,
    chat,
    completion,
    config_cmd,
    doctor,
    embed,
    history,
    inspect,
    lens,
    models_manage,
    models_show,
    next_token,
    prompts,
    pull,
    warm,
)
from llmcli.cli.base import new_app, new_group
from llmcli.cli.helpfmt import Command
from llmcli.cli.usage import is_bare_help, usage_line
from llmcli.context import Environment
from llmcli.errors import ExitStatus, LlmcliError, Terminated

PROG = "llmcli"
GENERATE = "Generate"
ALIASES = "Aliases"
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}
"""Write errors that no command handled itself, e.g. stdout on a full disk (``> /dev/full``)."""


def _add(
    target: typer.Typer,
    func: Callable[..., Any],
    name: str | None = None,
    panel: str | None = None,
    hidden: bool = False,
    **settings: Any,
) -> None:
    """Register one command, built from :class:`~llmcli.cli.helpfmt.Command` (readable help)."""
    target.command(name, cls=Command, rich_help_panel=panel, hidden=hidden, **settings)(func)


def _register_aliases(app: typer.Typer) -> None:
    """The names ollama users type (``run``, ``list``, ``show``, ``rm``), in their own panel."""
    _add(app, aliases.run, "run", panel=ALIASES, context_settings=aliases.RUN_CONTEXT)
    for name, target, func in (
        ("list", "models list", models_manage.list_models),
        ("show", "models show", models_show.show),
        ("rm", "models rm", models_manage.remove),
    ):
        _add(app, func, name, panel=ALIASES, help=aliases.alias_help(target, func))


def _register_commands(app: typer.Typer) -> None:
    _add(app, ask.ask, panel=GENERATE)
    _add(app, inspect.tokenize, panel=inspect.INSPECT)
    _add(app, inspect.detokenize, panel=inspect.INSPECT)
    _add(app, next_token.next_token, "next", panel=inspect.INSPECT)
    _add(app, bench.bench, panel=inspect.INSPECT)
    _add(app, chat.chat, panel=GENERATE)
    _add(app, doctor.doctor, panel="Setup")
    _add(app, embed.embed, panel=inspect.INSPECT)
    _add(app, lens.lens, panel=inspect.INSPECT)
    _add(app, pull.pull, "pull", panel="Models")
    _add(app, warm.serve, panel=warm.SERVER)
    _add(app, warm.ps, panel=warm.SERVER)
    _add(app, warm.stop, panel=warm.SERVER)


def _register_groups(app: typer.Typer) -> None:
    shell = new_group(
        "completion",
        "Shell completion for bash, zsh and fish: 'llmcli completion bash' prints the script, "
        "'install' puts it where the shell looks (commands, options, model names).",
    )
    for shell_name in get_args(completion.Shell):
        _add(shell, aliases.completion_script(shell_name), shell_name)
    _add(shell, completion.install, "install")
    _add(shell, completion.models, "models", hidden=True)
    _add(shell, completion.prompts, "prompts", hidden=True)
    app.add_typer(shell, name="completion", rich_help_panel="Setup")

    config = new_group(
        "config", "Show and change settings (the TOML config file and LLMCLI_* variables)."
    )
    _add(config, config_cmd.path_cmd, "path")
    _add(config, config_cmd.show, "show")
    _add(config, config_cmd.set_cmd, "set")
    _add(config, config_cmd.unset_cmd, "unset")
    _add(config, config_cmd.edit, "edit")
    app.add_typer(config, name="config", rich_help_panel="Setup")

    saved = new_group(
        "history",
        "List, show and remove saved conversations (resume one with 'llmcli chat --resume ID').",
    )
    _add(saved, history.history_list, "list")
    _add(saved, history.history_show, "show")
    _add(saved, history.history_rm, "rm")
    app.add_typer(saved, name="history")

    models = new_group("models", "List, inspect and remove models in the local store.")
    _add(models, models_manage.list_models, "list")
    _add(models, models_manage.remove, "rm")
    _add(models, models_manage.path, "path")
    _add(models, models_manage.alias, "alias")
    _add(models, models_manage.verify, "verify")
    _add(models, models_show.show, "show")
    app.add_typer(models, name="models")

    saved_prompts = new_group(
        "prompts",
        "Save and reuse prompts: system prompt, prompt text with {input}/$1 placeholders, "
        "model, sampling and schema ('llmcli ask -p NAME').",
    )
    _add(saved_prompts, prompts.save, "save")
    _add(saved_prompts, prompts.list_cmd, "list")
    _add(saved_prompts, prompts.show, "show")
    _add(saved_prompts, prompts.remove, "rm")
    _add(saved_prompts, prompts.edit, "edit")
    app.add_typer(saved_prompts, name="prompts", rich_help_panel=GENERATE)


def build_app() -> typer.Typer:
    """The whole ``llmcli`` command tree."""
    app = new_app()
    _register_commands(app)
    _register_groups(app)
    _register_aliases(app)
    return app


app = build_app()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated("terminated")


def _error_line(message: str) -> None:
    from llmcli.render.sanitize import visible

    try:  # messages quote servers, templates and files: never raw controls on stderr
        sys.stderr.write(f"{PROG}: error: {visible(message)}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the exit flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run the CLI and return the exit status (no ``sys.exit``; used by tests).

    ``env`` is the one :class:`Environment` every command gets (built here when not
    given): tests pass buffers, and a fake engine through ``env.load_engine``.
    """
    debug = os.environ.get("LLMCLI_DEBUG", "") not in ("", "0")
    try:
        from llmcli.session.inputs import check_argv

        args = list(argv) if argv is not None else sys.argv[1:]
        check_argv(args)
        result = app(args=args, prog_name=PROG, standalone_mode=False, obj=env or Environment())
        return int(result) if isinstance(result, int) else ExitStatus.OK
    except LlmcliError as exc:
        if debug:
            traceback.print_exc()
        if exc.status not in (ExitStatus.INTERRUPTED, ExitStatus.TERMINATED):
            _error_line(str(exc))
        return int(exc.status)
    except typer.Abort:
        return ExitStatus.INTERRUPTED
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # Click's usage errors, bundled in Typer
        if is_bare_help(exc):  # `llmcli`, `llmcli models`: the help is the answer
            return ExitStatus.OK
        _error_line(usage_line(exc, PROG))
        return int(getattr(exc, "exit_code", ExitStatus.USAGE))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except Terminated:
        return ExitStatus.TERMINATED
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except SystemExit as exc:
        # Typer catches a broken pipe inside a command and calls sys.exit(1).
        if isinstance(exc.__context__, BrokenPipeError):
            _silence_stdout()
            return 128 + signal.SIGPIPE
        raise
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            return _internal_error(exc, debug)
        _silence_stdout()  # or the exit flush fails the same way, with a traceback
        _error_line(f"cannot write: {exc.strerror} (free some space, or write elsewhere)")
        return ExitStatus.IO_ERROR
    except Exception as exc:
        return _internal_error(exc, debug)


def _internal_error(exc: Exception, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    _error_line(
        f"internal error: {type(exc).__name__}: {exc} "
        "(run with LLMCLI_DEBUG=1 for a traceback, and please report it)"
    )
    return ExitStatus.ERROR


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    status = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        status = 128 + signal.SIGPIPE
    except (OSError, ValueError, AttributeError):  # AttributeError: stdout closed (>&-)
        pass
    sys.exit(status)
