"""``llmcli pull`` when things go wrong: lost connections, kills, Ctrl-C, corruption, full disk.

The fake Hub (:mod:`tests.hub_server`) injects the faults and counts the bytes it
serves, so a resumed pull can be shown to fetch only the missing rest.
"""

from __future__ import annotations

import errno
import json
import os
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
        server.add_repo(REPO, {FILE: tiny_gguf(tmp_path, "tiny", hidden=256)})  # ~4.6 MB
        yield server


def store(home: Path) -> Path:
    return home / "data" / "models"


def partials(home: Path) -> list[Path]:
    folder = store(home) / ".incomplete"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def listed_models() -> list[object]:
    """The pulled models (``models list`` shows the bundled model too)."""
    result = run_llmcli("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    return [entry for entry in json.loads(result.stdout) if entry["source"] == "pulled"]


def start_pull(*args: str, stderr: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cli_command("pull", REPO, *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(stderr, "wb") if stderr else subprocess.PIPE,  # noqa: SIM115 - closed with the process
    )


def wait_for(condition: object, what: str, limit: float = 60) -> None:
    """Poll until ``condition()`` holds (sequencing only; no timing is asserted)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---- interrupted transfers resume --------------------------------------------------------


def test_lost_connection_then_resume_fetches_only_the_rest(hub: FakeHub, llmcli_home: Path) -> None:
    size = hub.file(REPO, FILE).size
    half = size // 2
    hub.fault(REPO, FILE, cut_at=half)
    cut = run_llmcli("pull", REPO)
    assert cut.returncode == 69, cut.stderr
    assert "lost the connection" in cut.stderr and "resume" in cut.stderr
    (partial,) = partials(llmcli_home)
    assert partial.stat().st_size == half
    assert listed_models() == []  # nothing half-done is visible

    hub.clear_faults()
    earlier = len(hub.transfers_of(REPO, FILE))
    resumed = run_llmcli("pull", REPO)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    (rest,) = hub.transfers_of(REPO, FILE)[earlier:]
    assert rest.range == f"bytes={half}-" and rest.served == size - half
    assert Path(resumed.stdout.strip()).read_bytes() == hub.file(REPO, FILE).data
    assert partials(llmcli_home) == []


def test_killed_process_then_resume(hub: FakeHub, llmcli_home: Path) -> None:
    size = hub.file(REPO, FILE).size
    hub.fault(REPO, FILE, pause_at=size // 3)
    proc = start_pull()
    wait_for(hub.paused.is_set, "the transfer to reach the pause")
    wait_for(
        lambda: sum(p.stat().st_size for p in partials(llmcli_home)) == size // 3, "the partial"
    )
    proc.kill()
    proc.wait()
    hub.clear_faults()
    earlier = len(hub.transfers_of(REPO, FILE))
    resumed = run_llmcli("pull", REPO)  # the dead process's lock does not block this
    assert resumed.returncode == 0, resumed.stderr
    (rest,) = hub.transfers_of(REPO, FILE)[earlier:]
    assert rest.range == f"bytes={size // 3}-" and rest.served == size - size // 3
    assert Path(resumed.stdout.strip()).read_bytes() == hub.file(REPO, FILE).data


def test_ctrl_c_keeps_the_partial(hub: FakeHub, llmcli_home: Path) -> None:
    size = hub.file(REPO, FILE).size
    hub.fault(REPO, FILE, pause_at=size // 2)
    proc = start_pull()
    wait_for(hub.paused.is_set, "the transfer to reach the pause")
    wait_for(
        lambda: sum(p.stat().st_size for p in partials(llmcli_home)) == size // 2, "the partial"
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"partial download is kept" in err
    assert b"Traceback" not in err
    (partial,) = partials(llmcli_home)
    assert partial.stat().st_size == size // 2
    hub.clear_faults()
    resumed = run_llmcli("pull", REPO)
    assert resumed.returncode == 0, resumed.stderr
    assert Path(resumed.stdout.strip()).read_bytes() == hub.file(REPO, FILE).data


def test_server_ignoring_range_restarts_cleanly(hub: FakeHub, llmcli_home: Path) -> None:
    size = hub.file(REPO, FILE).size
    hub.fault(REPO, FILE, cut_at=size // 2)
    assert run_llmcli("pull", REPO).returncode == 69
    hub.clear_faults()
    hub.fault(REPO, FILE, ignore_range=True)  # a proxy that answers 200 with the whole file
    result = run_llmcli("pull", REPO)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == hub.file(REPO, FILE).data


# ---- corruption ------------------------------------------------------------------------


def test_corrupted_transfer_is_detected_and_removed(hub: FakeHub, llmcli_home: Path) -> None:
    hub.fault(REPO, FILE, corrupt=True)  # same size, one byte flipped
    result = run_llmcli("pull", REPO)
    assert result.returncode == 65, result.stderr
    assert "corrupted" in result.stderr and "deleted" in result.stderr
    assert hub.served(REPO, FILE) == hub.file(REPO, FILE).size
    assert partials(llmcli_home) == []
    assert not list(store(llmcli_home).glob("*/*/*/*.gguf"))
    assert listed_models() == []


def test_valid_checksum_but_not_gguf_is_refused(hub: FakeHub, llmcli_home: Path) -> None:
    hub.add_repo("acme/junk-GGUF", {"junk-Q4_K_M.gguf": b"not a model at all" * 1000})
    result = run_llmcli("pull", "acme/junk-GGUF")
    assert result.returncode == 65, result.stderr
    assert "not a usable GGUF model" in result.stderr
    assert not list(store(llmcli_home).glob("*/*/*/*.gguf")) and partials(llmcli_home) == []


# ---- two pulls at once -----------------------------------------------------------------


def test_second_pull_gives_up_with_exit_75(hub: FakeHub) -> None:
    hub.fault(REPO, FILE, pause_at=1000)
    first = start_pull()
    wait_for(hub.paused.is_set, "the first pull to hold the file")
    second = run_llmcli("pull", REPO, "--wait", "0.5")
    assert second.returncode == 75, second.stderr
    assert "another llmcli" in second.stderr and "--wait" in second.stderr
    hub.release()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert hub.served(REPO, FILE) == hub.file(REPO, FILE).size  # one writer, one download


def test_second_pull_waits_then_finds_the_model(hub: FakeHub, tmp_path: Path) -> None:
    hub.fault(REPO, FILE, pause_at=1000)
    first = start_pull()
    wait_for(hub.paused.is_set, "the first pull to hold the file")
    log = tmp_path / "second.err"
    second = start_pull("--wait", "60", stderr=log)
    wait_for(lambda: b"waiting" in log.read_bytes(), "the second pull to wait")
    hub.release()
    out1, err1 = first.communicate(timeout=60)
    out2, _ = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, log.read_text()
    assert out1 == out2
    assert "already in the store" in log.read_text()
    assert hub.served(REPO, FILE) == hub.file(REPO, FILE).size


# ---- a full disk -----------------------------------------------------------------------


@pytest.fixture
def small_disk(llmcli_home: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted as the model store (needs root, as in CI; skipped otherwise)."""
    root = store(llmcli_home)
    root.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "llmcli-test", str(root)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_not_enough_space_is_refused_up_front(hub: FakeHub, small_disk: Path) -> None:
    result = run_llmcli("pull", REPO)  # 4.6 MB into 3 MiB
    assert result.returncode == 74, result.stderr
    assert "not enough disk space" in result.stderr
    assert hub.served(REPO, FILE) == 0
    assert listed_models() == []


def test_disk_filling_up_during_the_pull(
    hub: FakeHub, small_disk: Path, tmp_path: Path, llmcli_home: Path
) -> None:
    hub.add_repo(
        "acme/small-GGUF", {"s-Q4_K_M.gguf": tiny_gguf(tmp_path, "small", hidden=160)}
    )  # ~1.8 MB
    size = hub.file("acme/small-GGUF", "s-Q4_K_M.gguf").size
    hub.fault("acme/small-GGUF", "s-Q4_K_M.gguf", pause_at=size // 4)
    proc = subprocess.Popen(
        cli_command("pull", "acme/small-GGUF"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(hub.paused.is_set, "the transfer to reach the pause")
    ballast = small_disk / "ballast"
    _fill(ballast)  # something else fills the disk meanwhile
    hub.release()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 74, err
    assert b"disk full" in err and b"Traceback" not in err
    assert listed_models() == []
    assert not list(small_disk.glob("*/*/*/*.gguf"))  # no half file visible as a model
    ballast.unlink()
    resumed = run_llmcli("pull", "acme/small-GGUF")
    assert resumed.returncode == 0, resumed.stderr
    assert (
        Path(resumed.stdout.strip()).read_bytes()
        == hub.file("acme/small-GGUF", "s-Q4_K_M.gguf").data
    )


def _fill(path: Path) -> None:
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(path, "ab", buffering=0) as out:  # and the last page
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass
    os.sync()
