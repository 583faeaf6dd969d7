"""The remote engine against a real OpenAI-compatible server: llama-cpp-python's own.

A module-scoped fixture starts ``python -m llama_cpp.server`` on 127.0.0.1 with the
bundled SmolLM2, and the real CLI runs against it in subprocesses (and, for chat,
in a pseudo-terminal). Greedy answers through the server must equal the local
engine's for the same prompt: both apply the GGUF's own chat template (rendered
by different Jinja2 code) and pick the argmax token, so any difference would be a
bug in how llmcli builds the request or reads the stream.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcli.engine.hardware import physical_cores
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

ALIAS = "smollm2"
PROMPT = rf"{ALIAS}\S* \S*\d+/\d+\S*>"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_models(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"llama_cpp.server did not answer in 180 s:\n{log.read_text()[-3000:]}")


_SERVER_LAUNCHER = """
import runpy

import llama_cpp

from llmcli.engine.hardware import has_amx
from llmcli.engine.llama import _without_extra_buffers

with _without_extra_buffers(llama_cpp, has_amx()):
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""
"""``python -m llama_cpp.server``, loading the model as llmcli's engine does: where the
CPU advertises AMX, llama.cpp's AMX buffer type segfaults on multi-token decodes under
this hypervisor, and the greedy comparison needs the same weight layout on both sides."""


@pytest.fixture(scope="module")
def server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1`` of a llama-cpp-python server serving SmolLM2."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    # Same threads and batch size as the local engine: the summation order of the
    # matrix products, and so the last bits of the logits, depend on both.
    command = [
        sys.executable, "-c", _SERVER_LAUNCHER,
        "--model", str(model_path), "--model_alias", ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_batch", "512",
        "--n_threads", str(physical_cores()), "--n_threads_batch", str(physical_cores()),
    ]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_for_models(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remote(server: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_cli("ask", "--base-url", server, *args, input=input)


def local(*args: str, input: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_cli("ask", *args, input=input)


def test_models_list_remote_shows_the_servers_model(server: str) -> None:
    code = (
        "import sys, llmcli.cli.models_manage\nfrom llmcli.cli.app import main\n"
        "main(sys.argv[1:])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "models", "list", "--remote", server, "--json"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [m["model"] for m in json.loads(result.stdout)] == [ALIAS]


def test_greedy_chat_through_the_server_equals_the_local_engine(server: str) -> None:
    args = ("--greedy", "--max-tokens", "32", "Name three colours.")
    there, here = remote(server, *args), local(*args)
    assert there.returncode == 0, there.stderr.decode()
    assert here.returncode == 0, here.stderr.decode()
    assert there.stdout.strip()
    assert there.stdout == here.stdout


def test_greedy_chat_with_a_system_prompt_equals_local(server: str) -> None:
    args = ("--greedy", "-n", "24", "-s", "Answer like a pirate.", "Where is the treasure?")
    assert remote(server, *args).stdout == local(*args).stdout


def test_piped_stdin_raw_completion_equals_local(server: str) -> None:
    args = ("--raw", "--greedy", "--max-tokens", "12")
    there = remote(server, *args, input="1, 2, 3, 4,")
    assert there.returncode == 0, there.stderr.decode()
    assert there.stdout.decode().startswith(" 5, 6")
    assert there.stdout == local(*args, input="1, 2, 3, 4,").stdout


def test_json_usage_logprobs_and_finish_reason(server: str) -> None:
    args = ("--raw", "--greedy", "-n", "6", "--json", "--logprobs", "3")
    there = json.loads(remote(server, *args, input="The capital of France is").stdout)
    here = json.loads(local(*args, input="The capital of France is").stdout)
    assert there["model"] == ALIAS
    assert there["text"] == here["text"]
    assert there["finish_reason"] == "length"
    assert there["stats"]["generated_tokens"] == 6
    assert there["stats"]["ttft_s"] > 0
    assert [t["text"] for t in there["tokens"]] == [t["text"] for t in here["tokens"]]
    for mine, theirs in zip(here["tokens"], there["tokens"], strict=True):
        assert theirs["id"] is None  # servers send no token ids
        assert theirs["logprob"] == pytest.approx(mine["logprob"], abs=1e-3)
        assert [t["text"] for t in theirs["top"]] == [t["text"] for t in mine["top"]]


def test_stop_sequence_through_the_server(server: str) -> None:
    result = remote(server, "--raw", "--greedy", "-n", "20", "--stop", " 8", input="1, 2, 3, 4,")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "5, 6, 7,"


def test_stats_line_on_stderr(server: str) -> None:
    result = remote(server, "--greedy", "-n", "5", "--stats", "Hi")
    assert result.returncode == 0, result.stderr.decode()
    assert "5 tokens" in result.stderr.decode()


def test_chat_in_a_pseudo_terminal(server: str) -> None:
    """``llmcli chat`` over a pty: the first greedy answer is the local engine's answer."""
    pexpect = pytest.importorskip("pexpect")
    message = "My name is Ada. Say hello to me."
    expected = local("--greedy", "-n", "16", message).stdout.decode().strip()
    env = dict(os.environ, LLMCLI_BASE_URL=server, NO_COLOR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmcli", "chat", "--greedy", "-n", "16"],
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 160),
    )
    try:
        child.expect(PROMPT)
        child.sendline(message)
        child.expect(r"\d+ tokens")
        first = " ".join(ANSI.sub("", child.before).split())
        child.expect(PROMPT)
        child.sendline("What is my name?")
        child.expect(r"\d+ tokens")
        child.expect(PROMPT)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert expected
    assert " ".join(expected.split()) in first
