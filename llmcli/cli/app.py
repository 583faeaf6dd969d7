"""The process boundary: run the Typer app and map every outcome to an exit status.

This is the one place where exceptions become messages and exit codes
(:class:`~llmcli.errors.ExitStatus`); everything below raises.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

import typer

# Command modules register themselves on the shared app when imported.
import llmcli.cli.ask  # noqa: F401
import llmcli.cli.bench  # noqa: F401
import llmcli.cli.chat  # noqa: F401
import llmcli.cli.completion  # noqa: F401
import llmcli.cli.config_cmd  # noqa: F401
import llmcli.cli.doctor  # noqa: F401
import llmcli.cli.embed  # noqa: F401
import llmcli.cli.history  # noqa: F401
import llmcli.cli.inspect  # noqa: F401
import llmcli.cli.lens  # noqa: F401
import llmcli.cli.models  # noqa: F401
import llmcli.cli.models_manage  # noqa: F401
import llmcli.cli.models_show  # noqa: F401
import llmcli.cli.prompts  # noqa: F401
import llmcli.cli.pull  # noqa: F401
import llmcli.cli.warm  # noqa: F401
from llmcli.cli.base import app
from llmcli.errors import ExitStatus, LlmcliError, Terminated

PROG = "llmcli"
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}
"""Write errors that no command handled itself, e.g. stdout on a full disk (``> /dev/full``)."""


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


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (no ``sys.exit``; used by tests)."""
    debug = os.environ.get("LLMCLI_DEBUG", "") not in ("", "0")
    try:
        from llmcli.session.inputs import check_argv

        args = list(argv) if argv is not None else sys.argv[1:]
        check_argv(args)
        result = app(args=args, prog_name=PROG, standalone_mode=False)
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
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _error_line(f"{message} (see '{PROG} --help')")
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
