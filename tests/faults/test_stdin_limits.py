"""Stdin from the shell, as it really comes: endless, binary, not UTF-8 — for every command that
reads it, not only ``ask`` (``tests/faults/test_input.py`` has the details of ``ask``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import run_cli

READERS = [["ask", "-n", "2"], ["tokenize"], ["next"]]
IDS = ["ask", "tokenize", "next"]


@pytest.mark.parametrize("command", READERS, ids=IDS)
def test_endless_stdin_is_refused_at_the_stated_bound(command: list[str]) -> None:
    """``yes`` never ends: reading stdin whole would never return (nor fit in memory)."""
    shell = f"yes 'all work and no play' | {sys.executable} -m llmcli {' '.join(command)}"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, timeout=300)
    assert done.returncode == 65, done.stderr
    assert done.stderr.decode().startswith("llmcli: error: stdin is larger than 8 MiB")
    assert len(done.stderr.decode().splitlines()) == 1


@pytest.mark.parametrize("command", READERS, ids=IDS)
@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"abc\xff\xfe def", "not valid UTF-8 (byte offset 3)"),
        (b"caf\xc3", "not valid UTF-8 (byte offset 3)"),  # a character cut at the end
        (b"abc\x00def", "looks binary (NUL byte at offset 3)"),
    ],
    ids=["invalid", "cut", "binary"],
)
def test_every_reader_checks_the_bytes(command: list[str], data: bytes, problem: str) -> None:
    result = run_cli(*command, input=data)
    assert result.returncode == 65, result.stderr
    message = result.stderr.decode()
    assert problem in message and len(message.splitlines()) == 1


def test_stdout_on_a_full_disk_is_an_io_error() -> None:
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "llmcli", "ask", "-n", "20", "hi"],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert done.returncode == 74, done.stderr
    assert done.stderr.decode() == (
        "llmcli: error: cannot write: No space left on device "
        "(free some space, or write elsewhere)\n"
    )
