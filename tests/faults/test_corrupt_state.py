"""llmcli's own files damaged: every one named by the commands that need it, ignored by the rest.

The history database, a model manifest, the alias file, the input history, the
probe's verdict cache and the config file are each replaced by garbage (or cut,
or bit-flipped) at once; start-up and the commands that do not need the damaged
file keep working, and the ones that do fail with one line naming the file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmcli import paths
from llmcli.engine import probe
from llmcli.session.conversation import ChatMessage
from llmcli.session.history import HistoryStore
from tests.conftest import run_cli

GARBAGE = bytes(range(256)) * 40


@pytest.fixture
def damaged(llmcli_home: Path) -> dict[str, Path]:
    """Every state file llmcli keeps, damaged (the config file stays valid here)."""
    manifest = paths.models_dir() / "acme" / "tiny-GGUF" / "tiny-Q4_K_M" / "manifest.json"
    files = {
        "history": paths.conversations_db(),
        "manifest": manifest,
        "aliases": paths.models_dir() / "aliases.json",
        "input history": paths.history_file(),
        "verdicts": probe.verdict_file(),
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(GARBAGE)
    manifest.write_text('{"schema": 1, "ref": ')
    return files


def _one_error_line(result: subprocess.CompletedProcess[bytes], named: Path) -> str:
    message = result.stderr.decode()
    assert "Traceback" not in message
    assert len(message.strip().splitlines()) == 1, message
    assert str(named) in message, message
    return message


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["doctor"],
        ["tokenize", "x"],
        ["models", "show"],
        ["ask", "-n", "2", "hi"],
        ["config", "show"],
        ["completion", "models"],
    ],
    ids=" ".join,
)
def test_commands_that_do_not_need_the_damaged_files_work(
    damaged: dict[str, Path], args: list[str]
) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr


def test_models_list_names_what_it_skips(damaged: dict[str, Path]) -> None:
    result = run_cli("models", "list")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.decode()
    assert str(damaged["manifest"]) in warnings and str(damaged["aliases"]) in warnings


@pytest.mark.parametrize(
    ("args", "damage", "status"),
    [
        (["history", "list"], "history", 65),
        (["ask", "-c", "-n", "2", "hi"], "history", 65),
        (["chat"], "history", 65),
        (["ask", "-m", "acme/tiny-GGUF", "hi"], "manifest", 65),
        (["models", "path", "acme/tiny-GGUF"], "manifest", 65),
        (["ask", "-m", "my-alias", "hi"], "aliases", 65),
        (["models", "alias", "other", "acme/tiny-GGUF"], "aliases", 65),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_commands_that_need_a_damaged_file_name_it(
    damaged: dict[str, Path], args: list[str], damage: str, status: int
) -> None:
    result = run_cli(*args, input="hello\n")
    assert result.returncode == status, result.stderr
    _one_error_line(result, damaged[damage])


def test_the_history_message_says_how_to_start_afresh(damaged: dict[str, Path]) -> None:
    message = _one_error_line(run_cli("history", "list"), damaged["history"])
    db = damaged["history"]
    assert f"mv '{db}' '{db}.bad'" in message
    db.rename(db.with_name(db.name + ".bad"))
    assert run_cli("ask", "-c", "-n", "2", "hi").returncode == 0  # a new history
    assert run_cli("history", "list").returncode == 0


@pytest.mark.parametrize("damage", ["cut in half", "pages overwritten", "header overwritten"])
def test_a_real_history_damaged_in_place(damage: str) -> None:
    store = HistoryStore()
    for n in range(20):
        conversation = store.create(model="m")
        for i in range(4):
            store.append(conversation, ChatMessage("user", f"message {n}.{i} " + "x" * 200))
    store.close()
    db = paths.conversations_db()
    data = bytearray(db.read_bytes())
    if damage == "cut in half":
        data = data[: len(data) // 2]
    elif damage == "pages overwritten":
        data[4096 + 100 :: 7] = b"\xab" * len(data[4096 + 100 :: 7])
    else:
        data[100:200] = b"\xff" * 100
    db.write_bytes(bytes(data))
    for args in (["history", "list"], ["ask", "-c", "-n", "2", "hi"]):
        result = run_cli(*args)
        assert result.returncode == 65, result.stderr
        assert "is unreadable" in _one_error_line(result, db)


def test_a_broken_config_file_stops_only_the_commands_that_read_settings(
    llmcli_home: Path,
) -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_bytes(b'[model\ntemperature = "hot"\n\xff\x00')
    for args in (["ask", "hi"], ["tokenize", "x"], ["config", "show"]):
        result = run_cli(*args)
        assert result.returncode == 65, (args, result.stderr)
        assert "line" in _one_error_line(result, config)
    for args in (["--help"], ["models", "list"], ["history", "list"], ["config", "path"]):
        assert run_cli(*args).returncode == 0, args
    doctor = run_cli("doctor", "--json")
    assert doctor.returncode == 1  # doctor reports the file, and every other check still runs
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["config"]["status"] == "fail" and len(checks) > 3


# ---- a full disk under the history -------------------------------------------------------


@pytest.fixture
def full_data_disk(llmcli_home: Path) -> Iterator[Path]:
    """The data folder on a 512 KiB tmpfs (needs root, as in CI; skipped otherwise)."""
    data = paths.data_dir()
    data.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "llmcli-test", str(data)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield data
    subprocess.run(["umount", "-l", str(data)], check=False)


def _fill(folder: Path) -> Path:
    ballast = folder / "ballast"
    with ballast.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return ballast


def test_a_full_disk_under_the_history(full_data_disk: Path) -> None:
    first = run_cli("ask", "-c", "--greedy", "-n", "3", "Hello")
    assert first.returncode == 0, first.stderr
    ballast = _fill(full_data_disk)
    long_message = "tell me more " * 5000  # more than the free pages left
    full = run_cli("ask", "-c", "-n", "3", long_message)
    assert full.returncode == 74, full.stderr
    assert "conversation history" in _one_error_line(full, paths.conversations_db())
    ballast.unlink()
    shown = run_cli("history", "show", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    contents = [m["content"] for m in json.loads(shown.stdout)["messages"]]
    assert contents[0] == "Hello" and long_message not in contents  # nothing half-written
    assert run_cli("ask", "-c", "-n", "2", "again").returncode == 0
