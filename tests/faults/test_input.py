"""Bad input on stdin or the command line: refused clearly, before the model runs."""

from __future__ import annotations

import io

import pytest

from llmcli.errors import DataError
from llmcli.session import inputs
from tests.conftest import run_cli


def test_invalid_utf8_names_the_byte_offset() -> None:
    result = run_cli("ask", "summarise", input=b"good text \xff\xfe bad")
    assert result.returncode == 65
    assert b"byte offset 10" in result.stderr
    assert b"--encoding-errors replace" in result.stderr


def test_invalid_utf8_can_be_replaced() -> None:
    result = run_cli(
        "ask",
        "--encoding-errors",
        "replace",
        "--raw",
        "--greedy",
        "--max-tokens",
        "2",
        input=b"1, 2, 3, \xff 4,",
    )
    assert result.returncode == 0, result.stderr


def test_binary_input_is_refused() -> None:
    result = run_cli("ask", "what is this?", input=b"\x7fELF\x02\x01\x01\x00\x00\x00")
    assert result.returncode == 65
    assert b"NUL byte at offset 7" in result.stderr


def test_empty_prompt_is_a_usage_error() -> None:
    assert run_cli("ask", input=b"").returncode == 2
    assert run_cli("ask", "   ").returncode == 2


def test_stdin_larger_than_the_context_is_refused_with_both_counts() -> None:
    result = run_cli("ask", "--ctx", "512", "summarise", input="lorem ipsum " * 400)
    assert result.returncode == 65
    message = result.stderr.decode()
    assert "tokens but the context window holds 512" in message


def test_stdin_is_read_with_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """More than the bound is never read whole: read() asks for bound + 1 bytes only."""
    monkeypatch.setattr(inputs, "MAX_STDIN_BYTES", 1000)

    class Endless(io.RawIOBase):
        asked: list[int] = []

        def read(self, size: int = -1) -> bytes:
            assert size > 0, "must not read without a bound"
            self.asked.append(size)
            return b"a" * size

    stream = Endless()
    with pytest.raises(DataError, match="larger than"):
        inputs.read_stdin(stream)  # type: ignore[arg-type]
    assert stream.asked == [1001]


def test_the_bound_is_stated_in_the_error() -> None:
    result = run_cli("ask", "x", input=b"a" * (inputs.MAX_STDIN_BYTES + 10))
    assert result.returncode == 65
    assert b"larger than 8 MiB" in result.stderr


def test_chat_stdin_is_checked_like_ask() -> None:
    bad = run_cli("chat", "--greedy", "--max-tokens", "3", "-q", input=b"hi \xff there\n")
    assert bad.returncode == 65
    assert b"byte offset 3" in bad.stderr
    assert b"Traceback" not in bad.stderr
    binary = run_cli("chat", "--greedy", "--max-tokens", "3", "-q", input=b"hi\x00\n")
    assert binary.returncode == 65
    assert b"NUL byte" in binary.stderr
