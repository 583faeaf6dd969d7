"""Fault tests of the engine server: a server killed mid-answer, stale and foreign
sockets, two clients starting it at once, and a disk that refuses the saved state."""

from __future__ import annotations

import json
import os
import pwd
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli as _run_cli
from tests.serve_helpers import (
    kill_servers,
    running_server,
    server_log,
    server_pids,
    socket_of,
    wait_for,
    warm_env,
)


def run_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """The CLI with room for a loaded shared machine (a server start, a model load)."""
    kwargs.setdefault("timeout", 600)
    return _run_cli(*args, **kwargs)


ASK = ("ask", "--greedy", "-n", "8")
PROMPT = "What is the best way to learn music?"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    path.mkdir()
    yield path
    kill_servers(path)


def _history(env: dict[str, str]) -> list[dict[str, object]]:
    result = run_cli("history", "show", "--json", "1", env=env)
    assert result.returncode == 0, result.stderr
    messages: list[dict[str, object]] = json.loads(result.stdout)["messages"]
    return messages


def test_server_killed_mid_answer_is_a_clear_error_and_loses_no_history(home: Path) -> None:
    env = warm_env(home)
    with running_server(home) as server:
        assert run_cli(*ASK, "-c", "Hi, I am Bob.", env=env).returncode == 0
        process = subprocess.Popen(
            [sys.executable, "-m", "llmcli", "ask", "-c", "--greedy", "-n", "3000", "Count on."],
            env=dict(os.environ, **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stdout.read(1)
        os.kill(server.pid, signal.SIGKILL)
        _, err = process.communicate(timeout=600)
    assert process.returncode == 69, err
    assert b"engine server" in err and b"stopped in the middle of the answer" in err
    assert b"Traceback" not in err
    roles = [(m["role"], m["content"]) for m in _history(env)]
    assert roles[0] == ("user", "Hi, I am Bob.") and roles[2] == ("user", "Count on.")
    assert len(roles) == 4  # the partial answer is kept too
    # The socket it left is stale: the next call starts a new server and says so.
    result = run_cli(*ASK, "-c", "Still there?", env=env)
    assert result.returncode == 0, result.stderr
    assert b"note: the engine server had stopped; started a new one" in result.stderr
    assert len(_history(env)) == 6


def test_a_stale_socket_file_is_replaced(home: Path) -> None:
    env = warm_env(home)
    path = socket_of(home)
    path.parent.mkdir(mode=0o700, parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed server leaves
    os.chmod(path, 0o600)
    result = run_cli(*ASK, PROMPT, env=env)
    assert result.returncode == 0, result.stderr
    assert b"started a new one" in result.stderr
    assert len(server_pids(home)) == 1
    assert run_cli("stop", env=env).returncode == 0


@pytest.mark.parametrize("how", ["chown", "chmod", "dir"])
def test_a_socket_another_user_could_have_made_is_refused(home: Path, how: str) -> None:
    env = warm_env(home)
    nobody = pwd.getpwnam("nobody")
    with running_server(home):
        path = socket_of(home)
        if how == "chown":
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        elif how == "chmod":
            os.chmod(path, 0o666)
        else:
            os.chmod(path.parent, 0o777)
        result = run_cli(*ASK, PROMPT, env=env)
        assert result.returncode == 69, result.stderr
        line = result.stderr.decode().strip()
        assert line.startswith("llmcli: error: refusing the engine server's"), line
        assert "--keep-alive 0" in line and "Traceback" not in line
        for tool in (("ps",), ("stop",)):
            assert run_cli(*tool, env=env).returncode == 69
        # In-process still works, and nothing replaced the refused socket.
        assert run_cli(*ASK, "--keep-alive", "0", PROMPT, env=env).returncode == 0
        assert len(server_pids(home)) == 1


def test_two_clients_starting_the_server_at_once_make_one(home: Path) -> None:
    env = dict(os.environ, **warm_env(home))
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "llmcli", *ASK, PROMPT],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [client.communicate(timeout=600) for client in clients]
    assert [c.returncode for c in clients] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]
    assert len(server_pids(home)) == 1
    assert run_cli("stop", env=env).returncode == 0
    assert wait_for(lambda: not server_pids(home))


def _small_files() -> None:
    # Files over 1 MiB cannot be written: a KV state (~11 MiB here) hits EFBIG.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_a_full_disk_while_saving_state_still_answers(home: Path) -> None:
    env = warm_env(home)
    long_text = " ".join(f"Fact {n}: box {n} is blue." for n in range(60))
    with running_server(home, preexec_fn=_small_files):
        for n in range(2):
            result = run_cli(*ASK, "-c", f"{long_text} ({n})", env=env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip()
        assert wait_for(lambda: "could not save a KV state" in server_log(home))
    leftovers = list((home / "cache" / "kv-states").glob("*/*"))
    assert leftovers == []


def test_a_damaged_model_is_refused_by_the_server_as_in_process(home: Path) -> None:
    env = warm_env(home)
    bad = home / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with running_server(home):
        warm = run_cli("ask", "-m", str(bad), "hi", env=env)
    cold = run_cli("ask", "--keep-alive", "0", "-m", str(bad), "hi", env=env)
    assert warm.returncode == cold.returncode == 65
    assert warm.stderr == cold.stderr and b"truncated GGUF file" in warm.stderr
