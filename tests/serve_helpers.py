"""Starting, finding and stopping engine servers in tests (none may outlive its test)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

WARM = "5m"


def warm_env(home: Path, keep_alive: str = WARM) -> dict[str, str]:
    return {"LLMCLI_HOME": str(home), "LLMCLI_KEEP_ALIVE": keep_alive}


def _environ(pid: int) -> dict[str, str]:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _is_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"llmcli" in cmdline and b"serve" in cmdline


def server_pids(under: Path) -> list[int]:
    """Engine servers whose LLMCLI_HOME lies under ``under`` (a test's home or basetemp)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid() or not _is_server(pid):
            continue
        home = _environ(pid).get("LLMCLI_HOME", "")
        if home and Path(home).is_relative_to(under):
            found.append(pid)
    return found


def kill_servers(under: Path) -> list[int]:
    pids = server_pids(under)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def wait_for(condition: Callable[[], bool], timeout: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def socket_of(home: Path) -> Path:
    return home / "run" / "engine.sock"


@contextlib.contextmanager
def running_server(
    home: Path, *args: str, preexec_fn: Callable[[], None] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``llmcli serve`` in the foreground for one test, its log in HOME/serve.log."""
    env = dict(os.environ, **warm_env(home))
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmcli", "serve", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        preexec_fn=preexec_fn,
    )
    try:
        assert wait_for(lambda: socket_of(home).exists() or process.poll() is not None)
        assert process.poll() is None, (home / "serve.log").read_text()
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        kill_servers(home)


def server_log(home: Path) -> str:
    """The foreground server's log, or the one an auto-started server writes."""
    text = ""
    for path in (home / "serve.log", home / "state" / "serve.log"):
        with contextlib.suppress(OSError):
            text += path.read_text(errors="replace")
    return text
