"""SIGTERM during ``llmcli pull`` cleans up as Ctrl-C does (``test_pull_faults.py``): the partial
download is kept, the lock is released, and the next pull fetches only the rest. Exit 143."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_server import FakeHub, cli_command, online_hub, run_llmcli, tiny_gguf

REPO = "acme/tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with online_hub(monkeypatch, tmp_path) as server:
        server.add_repo(REPO, {FILE: tiny_gguf(tmp_path, "tiny", hidden=256)})
        yield server


def _partial_bytes(home: Path) -> int:
    folder = home / "data" / "models" / ".incomplete"
    return sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_keeps_the_partial_and_releases_the_lock(hub: FakeHub, llmcli_home: Path) -> None:
    size = hub.file(REPO, FILE).size
    hub.fault(REPO, FILE, pause_at=size // 2)
    proc = subprocess.Popen(
        cli_command("pull", REPO), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _wait_for(hub.paused.is_set, "the transfer to reach the pause")
    _wait_for(lambda: _partial_bytes(llmcli_home) == size // 2, "the partial")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"Traceback" not in err
    assert _partial_bytes(llmcli_home) == size // 2
    hub.clear_faults()
    earlier = len(hub.transfers_of(REPO, FILE))
    resumed = run_llmcli("pull", REPO, "--wait", "0")  # the lock is free at once
    assert resumed.returncode == 0, resumed.stderr
    (rest,) = hub.transfers_of(REPO, FILE)[earlier:]
    assert rest.range == f"bytes={size // 2}-"
    assert Path(resumed.stdout.strip()).read_bytes() == hub.file(REPO, FILE).data
