"""Reading the user's text from stdin and the command line, safely.

Piped input is validated before it reaches the model: it must be text (no NUL
bytes), valid UTF-8 unless the user chose replacement, and not larger than a
fixed bound, which is stated in the error so the user knows what to cut.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Literal

from llmcli.errors import DataError, UsageError

MAX_STDIN_BYTES = 8 * 1024 * 1024
EncodingErrors = Literal["strict", "replace"]


def read_stdin(stream: IO[bytes], *, errors: EncodingErrors = "strict") -> str:
    """Read at most :data:`MAX_STDIN_BYTES` from ``stream`` and decode it as UTF-8."""
    data = stream.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise DataError(
            f"stdin is larger than {MAX_STDIN_BYTES // (1024 * 1024)} MiB, the most llmcli reads",
            hint="pipe in less text (e.g. through head -c)",
        )
    return decode_input(data, errors=errors, source="stdin")


def decode_input(
    data: bytes,
    *,
    errors: EncodingErrors,
    source: str,
    fix: str = "convert it with iconv, or pass --encoding-errors replace",
) -> str:
    """Text from ``data``; NUL bytes and (with ``strict``) invalid UTF-8 are refused."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise DataError(
            f"{source} looks binary (NUL byte at offset {nul})",
            hint="pipe in text, not a binary file",
        )
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source} is not valid UTF-8 (byte offset {exc.start})",
            hint=fix,
        ) from None


def combine_prompt(stdin_text: str | None, words: list[str]) -> str:
    """Stdin first, then the prompt words, on separate lines (documented in README)."""
    parts = [part for part in (stdin_text, " ".join(words)) if part and part.strip()]
    text = "\n".join(part.rstrip("\n") for part in parts)
    if not text.strip():
        raise UsageError(
            "the prompt is empty", hint="give a prompt, e.g. llmcli ask 'why is the sky blue?'"
        )
    return text


def check_argv(args: Sequence[str]) -> None:
    """Refuse command-line arguments that are not valid UTF-8 (exit 65), before any command.

    Python hands undecodable argv bytes over as lone surrogates, which fail much later
    (writing history, tokenizing) as an internal error. A file name may legitimately hold
    such bytes on POSIX, so an argument (or the value of ``--opt=VALUE``) that names an
    existing file is let through.
    """
    for index, arg in enumerate(args, start=1):
        if not _has_surrogates(arg):
            continue
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if _names_a_file(value):
            continue
        raw = arg.encode("utf-8", "surrogateescape")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start
        else:  # pragma: no cover - surrogates always come from undecodable bytes
            offset = 0
        raise DataError(
            f"command-line argument {index} is not valid UTF-8 (byte offset {offset})",
            hint="pass UTF-8 text (check the terminal's locale), or pipe the text in with "
            "--encoding-errors replace",
        )


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _names_a_file(text: str) -> bool:
    try:
        return os.path.lexists(os.fsencode(text))
    except (ValueError, OSError, UnicodeError):
        return False
