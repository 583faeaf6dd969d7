"""The engine server with the real model: same output warm and cold, a light client,
ps/stop, Ctrl-C and dead clients, version replacement, KV states across processes.

Each test runs its own server (``running_server``) or lets the CLI start one under the
test's own LLMCLI_HOME, and every server is killed when the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmcli.engine.wire import encode
from llmcli.serve.pool import FairLock
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


PROMPT = "What is the best way to learn music?"
ASK = ("ask", "--greedy", "-n", "12")
COLD = {"LLMCLI_KEEP_ALIVE": "0"}


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One foreground server shared by this module's read-only tests."""
    home = tmp_path_factory.mktemp("served")
    with running_server(home, "--keep-alive", "10m"):
        yield home


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[Path]:
    """A home for a test that starts (or lets the CLI start) servers of its own."""
    home = tmp_path / "home"
    home.mkdir()
    yield home
    kill_servers(home)


def _ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def test_greedy_output_is_byte_identical_warm_and_cold(server_home: Path) -> None:
    warm = warm_env(server_home)
    for args in (
        (*ASK, PROMPT),
        ("ask", "--raw", "--greedy", "-n", "12", "1, 2, 3, 4,"),
        ("tokenize", PROMPT),
        ("tokenize", "--json", "--special", "<|im_start|>hi 🎵"),
        ("next", "--top", "5", "--steps", "3", PROMPT),
        ("next", "--json", "--raw", "The capital of France is"),
    ):
        assert _ok(run_cli(*args, env=warm)) == _ok(run_cli(*args, env=COLD)), args


def test_ask_continue_and_chat_are_identical_warm_and_cold(tmp_path: Path) -> None:
    outputs = []
    for name, keep_alive in (("cold", "0"), ("warm", "5m")):
        home = tmp_path / name
        env = warm_env(home, keep_alive)
        try:
            texts = [_ok(run_cli(*ASK, "-c", text, env=env)) for text in ("Hi, I am Bob.", "Who?")]
            texts.append(_ok(run_cli("chat", "--greedy", "-n", "8", input="Hi\nBye\n", env=env)))
            outputs.append(texts)
            if keep_alive != "0":
                assert len(server_pids(home)) == 1  # started on first use, then reused
        finally:
            run_cli("stop", env=env)
            kill_servers(home)
    assert outputs[0] == outputs[1]


def test_warm_client_imports_neither_llama_cpp_nor_numpy(server_home: Path) -> None:
    code = (
        "import sys\n"
        "from llmcli.cli.app import run\n"
        f"status = run(['ask', '--greedy', '-n', '4', {PROMPT!r}])\n"
        "heavy = sorted(m for m in ('llama_cpp', 'numpy') if m in sys.modules)\n"
        "print('\\nSTATUS', status, 'HEAVY', ','.join(heavy) or '-')\n"
    )
    env = dict(os.environ, **warm_env(server_home))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=env, timeout=600, check=False
    )
    assert result.stdout.decode().splitlines()[-1] == "STATUS 0 HEAVY -", result.stderr


def test_ps_lists_models_and_stop_unloads_them(own_home: Path) -> None:
    env = warm_env(own_home)
    with running_server(own_home):
        _ok(run_cli(*ASK, PROMPT, env=env))
        data = json.loads(_ok(run_cli("ps", "--json", env=env)))
        assert data["running"] is True
        (model,) = data["models"]
        assert model["model"] == "SmolLM2-135M-Instruct.Q4_1"
        assert model["memory_bytes"] > 90_000_000 and model["busy"] is False
        table = _ok(run_cli("ps", env=env)).decode()
        assert "SmolLM2-135M-Instruct.Q4_1" in table and "MEMORY" in table
        missing = run_cli("stop", "no-such-model", env=env)
        assert missing.returncode == 1 and b"not loaded" in missing.stderr
        assert b"unloaded SmolLM2" in _ok(run_cli("stop", "SmolLM2-135M-Instruct.Q4_1", env=env))
        assert json.loads(_ok(run_cli("ps", "--json", env=env)))["models"] == []
        assert b"stopped the engine server" in _ok(run_cli("stop", env=env))
        assert wait_for(lambda: not socket_of(own_home).exists())
    assert json.loads(_ok(run_cli("ps", "--json", env=env))) == {"running": False, "models": []}


def _start_long_answer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "ask", "--raw", "--greedy", "-n", "3000", "1, 2, 3,"],
        env=dict(os.environ, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.read(1)  # the answer is streaming
    return process


def _cancelled_turns(home: Path) -> list[int]:
    lines = [line for line in server_log(home).splitlines() if "turn cancelled after" in line]
    return [int(line.split("after ")[1].split()[0]) for line in lines]


def test_ctrl_c_stops_the_generation_in_the_server(own_home: Path) -> None:
    env = warm_env(own_home)
    with running_server(own_home):
        expected = _ok(run_cli(*ASK, PROMPT, env=env))
        process = _start_long_answer(env)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=600)
        assert process.returncode == 130, err
        assert wait_for(lambda: len(_cancelled_turns(own_home)) == 1)
        assert _cancelled_turns(own_home)[0] < 3000
        assert _ok(run_cli(*ASK, PROMPT, env=env)) == expected  # the next call works


def test_a_client_killed_mid_answer_frees_its_slot(own_home: Path) -> None:
    env = warm_env(own_home)
    with running_server(own_home):
        process = _start_long_answer(env)
        process.kill()
        process.wait()
        assert wait_for(lambda: len(_cancelled_turns(own_home)) == 1)
        assert _cancelled_turns(own_home)[0] < 3000
        assert _ok(run_cli(*ASK, PROMPT, env=env))


def test_fair_lock_serves_waiters_in_arrival_order() -> None:
    lock, order = FairLock(), []
    assert lock.acquire()
    threads = []
    for n in range(5):
        thread = threading.Thread(
            target=lambda n=n: (lock.acquire(), order.append(n), lock.release())
        )
        thread.start()
        assert wait_for(lambda n=n: lock.waiting == n + 1, timeout=10)
        threads.append(thread)
    given_up = threading.Event()
    given_up.set()
    assert lock.acquire(given_up) is False  # a cancelled waiter leaves the queue
    lock.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]


def _fake_old_server(path: Path, stop: threading.Event) -> None:
    """A server of another llmcli version: answers hello, exits on shutdown."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(4)
    listener.settimeout(0.2)
    ready.set()
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.recv(65536)
            conn.sendall(encode({"ok": True, "version": "0.0.1", "protocol": 1, "pid": 4242}))
            if conn.recv(65536):  # shutdown
                conn.sendall(encode({"ok": True}))
                stop.set()
    listener.close()
    path.unlink()


ready = threading.Event()


def test_a_server_of_another_version_is_replaced_with_a_notice(own_home: Path) -> None:
    env = warm_env(own_home)
    stop = threading.Event()
    ready.clear()
    fake = threading.Thread(target=_fake_old_server, args=(socket_of(own_home), stop))
    fake.start()
    try:
        assert ready.wait(10)
        result = run_cli(*ASK, PROMPT, env=env)
        assert result.returncode == 0, result.stderr
        notices = [line for line in result.stderr.decode().splitlines() if "replaced" in line]
        assert notices == ["note: replaced an engine server of llmcli 0.0.1 (pid 4242)"]
        assert len(server_pids(own_home)) == 1
    finally:
        stop.set()
        fake.join(10)
        run_cli("stop", env=env)


def _conversation(env: dict[str, str], turns: int) -> None:
    long_text = " ".join(f"Fact {n}: the colour of box {n} is blue." for n in range(40))
    for n in range(turns):
        _ok(run_cli(*ASK, "-c", f"Remember this. {long_text} ({n})", env=env))


def _stats(result: subprocess.CompletedProcess[bytes]) -> dict[str, int]:
    stats: dict[str, int] = json.loads(_ok(result))["stats"]
    return stats


def test_kv_state_on_disk_skips_prefill_in_a_new_server(own_home: Path) -> None:
    env = warm_env(own_home)
    with running_server(own_home):
        _conversation(env, 2)
        assert wait_for(lambda: "saved a KV state" in server_log(own_home))
    # A new server process: only the state on disk can cover the conversation.
    with running_server(own_home):
        stats = _stats(run_cli(*ASK, "-c", "--json", "And box 3?", env=env))
        assert "restored a KV state" in server_log(own_home)
        assert stats["cached_tokens"] > 0.8 * stats["prompt_tokens"] > 400


def test_a_damaged_or_foreign_state_file_is_a_cache_miss(own_home: Path) -> None:
    env = warm_env(own_home)
    with running_server(own_home):
        _conversation(env, 2)
        assert wait_for(lambda: "saved a KV state" in server_log(own_home))
    states = list((own_home / "cache" / "kv-states").glob("*/*.kv"))
    assert states
    for n, path in enumerate(states):
        data = bytearray(path.read_bytes())
        if n % 2 == 0:
            data[-100:] = os.urandom(100)  # payload damaged: its sha256 no longer matches
        else:
            data = bytearray(b"not a state at all")
        path.write_bytes(bytes(data))
    (states[0].parent / "foreign.kv").write_bytes(os.urandom(4096))
    with running_server(own_home):
        stats = _stats(run_cli(*ASK, "-c", "--json", "And box 3?", env=env))
        assert stats["cached_tokens"] < 0.5 * stats["prompt_tokens"]
        assert "restored a KV state" not in server_log(own_home)


def test_an_auto_started_server_exits_after_keep_alive_idle(own_home: Path) -> None:
    env = warm_env(own_home, keep_alive="1s")
    assert _ok(run_cli(*ASK, PROMPT, env=env))
    assert wait_for(lambda: not server_pids(own_home), timeout=60)
    assert not socket_of(own_home).exists()  # it removed its socket on the way out
