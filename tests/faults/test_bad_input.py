"""Ordinary bad input is a one-line error with a documented exit code, never "internal error".

Each case here once ended in an internal error, a silent wrap-around or a hang.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from llmcli import paths
from tests import gguf_factory as gf
from tests.conftest import run_cli
from tests.faults import tiny_models as tm


def cli_bytes(
    *args: bytes, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """The CLI with raw bytes as argv (what a shell passes for ``$'\\xff'``)."""
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"llmcli", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], status: int) -> str:
    message = result.stderr.decode(errors="replace")
    assert result.returncode == status, (result.returncode, message[-1500:])
    assert "internal error" not in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    return message


@pytest.mark.parametrize(
    "args",
    [
        (b"ask", b"-n", b"2", b"caf\xe9 ok"),
        (b"ask", b"-n", b"2", b"-s", b"\xff\xfe", b"hi"),
        (b"tokenize", b"ab\xff"),
    ],
    ids=["prompt", "system", "tokenize"],
)
def test_invalid_utf8_in_argv_is_a_data_error(args: tuple[bytes, ...]) -> None:
    message = assert_one_line_error(cli_bytes(*args), 65)
    assert "not valid UTF-8" in message and "byte offset" in message


def test_a_file_name_that_is_not_utf8_still_works_as_a_path(tmp_path: Path) -> None:
    odd = os.path.join(os.fsencode(tmp_path), b"caf\xe9.gguf")
    Path(os.fsdecode(odd)).write_bytes(b"not a model")
    result = cli_bytes(b"models", b"show", odd)
    message = assert_one_line_error(result, 65)  # reached the GGUF check: not an argv error
    assert "UTF-8" not in message


def test_ctx_and_seed_that_would_wrap_are_refused() -> None:
    for args in (("--ctx", str(2**32)), ("--seed", str(2**32)), ("--seed", "-1")):
        result = run_cli("ask", "-n", "2", *args, "hi")
        message = assert_one_line_error(result, 2)
        assert args[0] in message


def test_a_context_length_of_2_32_minus_1_in_a_header_is_refused(tmp_path: Path) -> None:
    kvs = [
        gf.kv("llama.context_length", gf.UINT32, 2**32 - 1) if b"context_length" in k else k
        for k in tm._llama_kvs(tm.byte_characters(), [])
    ]
    specs = gf.tiny_llama_tensors(
        n_blocks=1, hidden=tm.HIDDEN, ffn=tm.FFN, kv_dim=tm.HIDDEN // tm.HEADS * tm.KV_HEADS,
        vocab=256, tied=True, ggml_type=gf.F32,
    )  # fmt: skip
    model = gf.write_gguf(tmp_path / "ctx.gguf", kvs, specs)
    message = assert_one_line_error(run_cli("ask", "-m", str(model), "hi"), 65)
    assert "context length of 4294967295" in message


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_as_config_file_does_not_hang(fifo: Path, kind: str) -> None:
    target = str(fifo) if kind == "fifo" else "/dev/zero"
    result = run_cli("ask", "-n", "2", "hi", env={"LLMCLI_CONFIG": target}, timeout=30)
    message = assert_one_line_error(result, 65)
    assert target in message and "not a regular file" in message


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_as_chat_template_does_not_hang(fifo: Path, kind: str) -> None:
    target = str(fifo) if kind == "fifo" else "/dev/zero"
    result = run_cli("ask", "-n", "2", "--chat-template", target, "hi", timeout=30)
    message = assert_one_line_error(result, 65)
    assert "not a regular file" in message


def test_a_fifo_as_input_history_does_not_hang_the_chat() -> None:
    history = paths.history_file()
    history.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(history)
    env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "llmcli", "chat"], env=env, dimensions=(40, 160), timeout=60
    )
    child.expect(re.compile(rb"\d+/\d+(?:\x1b\[0m)?>"))
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_load_of_deeply_nested_or_surrogate_json_keeps_the_chat_alive(tmp_path: Path) -> None:
    nested = tmp_path / "nested.json"
    nested.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}")
    surrogate = tmp_path / "surrogate.json"
    surrogate.write_text(
        json.dumps({"messages": [{"role": "user", "content": "x"}]}).replace('"x"', '"\\ud800"')
    )
    lines = [f"/load {nested}", f"/load {surrogate}", "Say hi."]
    result = run_cli("chat", "-q", "--greedy", "-n", "4", input="\n".join(lines) + "\n")
    stderr = result.stderr.decode()
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert "nested too deeply" in stderr and "surrogate" in stderr
    assert result.stdout.strip(), stderr  # the chat answered after both errors
