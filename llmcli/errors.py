"""Exit statuses and the error types every layer raises.

Errors carry their exit status and a hint that tells the user how to fix the
problem; the CLI boundary (``llmcli.cli.app``) is the one place that turns them
into a message on stderr and a process exit code.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes (BSD ``sysexits`` where one fits), documented in the README."""

    OK = 0
    ERROR = 1
    USAGE = 2
    DATA_ERROR = 65  # EX_DATAERR: unreadable model, prompt too long, bad input
    UNAVAILABLE = 69  # EX_UNAVAILABLE: a server or the Hub cannot be reached
    IO_ERROR = 74  # EX_IOERR: disk full, unwritable store
    TEMP_FAIL = 75  # EX_TEMPFAIL: try again later (lock held, rate limited)
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


class LlmcliError(Exception):
    """An error the user can act on: a one-line message plus how to fix it."""

    status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(LlmcliError):
    """The command line asks for something impossible."""

    status = ExitStatus.USAGE


class DataError(LlmcliError):
    """Input data (a model file, a prompt, stdin) cannot be used."""

    status = ExitStatus.DATA_ERROR


class ModelNotFound(LlmcliError):
    """No model could be resolved from the arguments, environment or store."""

    status = ExitStatus.ERROR


class ServiceUnavailable(LlmcliError):
    """A remote service (the Hub, an inference server) cannot be reached."""

    status = ExitStatus.UNAVAILABLE


class StorageError(LlmcliError):
    """Writing to disk failed (full disk, permissions)."""

    status = ExitStatus.IO_ERROR


class TemporaryFailure(LlmcliError):
    """Something is busy now and may work on retry (a lock, a rate limit)."""

    status = ExitStatus.TEMP_FAIL


class Interrupted(LlmcliError):
    """The user pressed Ctrl-C (SIGINT)."""

    status = ExitStatus.INTERRUPTED


class Terminated(BaseException):
    """The process received SIGTERM (raised by the handler ``llmcli.cli.app`` installs).

    Like ``KeyboardInterrupt`` it is not an ``Exception``: handlers written for
    failures (``except LlmcliError`` in the chat loop, ``except Exception`` around a
    doctor check) must not swallow it and carry on. Code that cleans up after Ctrl-C
    catches ``(KeyboardInterrupt, Terminated)`` to do the same for SIGTERM.
    """

    status = ExitStatus.TERMINATED
