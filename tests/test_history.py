"""The conversations database, the input-history file, and ``llmcli history``.

Concurrency is tested with real processes writing at the same time; the CLI runs
in a subprocess against a database filled through the store's API.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from llmcli import paths
from llmcli.errors import DataError, LlmcliError
from llmcli.repl.history_file import LockedFileHistory
from llmcli.session.conversation import ChatMessage
from llmcli.session.history import HistoryStore
from tests.conftest import run_cli


def _fill(store: HistoryStore, *texts: str, model: str = "m") -> int:
    conv_id = store.create(model=model, model_ref=None, system=None)
    for i, text in enumerate(texts):
        store.append(conv_id, ChatMessage("user" if i % 2 == 0 else "assistant", text))
    return conv_id


def test_store_round_trip_and_order(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    first = _fill(store, "a", "b")
    second = _fill(store, "c", "d", "e")
    assert [c.id for c in store.conversations()] == [second, first]
    assert store.last_id() == second
    store.append(first, ChatMessage("user", "newer"))
    assert store.last_id() == first  # "last" means last written to
    loaded = store.load(first)
    assert [m.content for m in loaded.messages] == ["a", "b", "newer"]
    assert all(m.id is not None for m in loaded.messages)
    info = store.info(second)
    assert (info.messages, info.title, info.model) == (3, "c", "m")


def test_store_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    _fill(store, "x")
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._connect().execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_remove_and_missing(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    conv_id = _fill(store, "a", "b")
    assert store.remove(conv_id)
    assert not store.remove(conv_id)
    with pytest.raises(LlmcliError, match=f"no conversation {conv_id}"):
        store.load(conv_id)


def test_nothing_is_created_until_used(tmp_path: Path) -> None:
    HistoryStore(tmp_path / "h.db")
    assert not (tmp_path / "h.db").exists()


def _writer(db: str, conv_id: int, worker: int, count: int) -> None:
    store = HistoryStore(Path(db))
    for i in range(count):
        store.append(conv_id, ChatMessage("user", f"w{worker}-{i}"))
    store.close()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    conv_id = _fill(HistoryStore(db), "start")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(db), conv_id, w, 40)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    contents = [m.content for m in HistoryStore(db).load(conv_id).messages]
    assert len(contents) == 1 + 4 * 40
    for w in range(4):  # each writer's messages arrive whole and in its order
        mine = [c for c in contents if c.startswith(f"w{w}-")]
        assert mine == [f"w{w}-{i}" for i in range(40)]


def test_a_corrupt_database_names_the_file(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError) as info:
        HistoryStore(db).last_id()
    assert str(db) in str(info.value)
    assert "mv" in (info.value.hint or "")


# -- the input history file ------------------------------------------------------------------


def _history_writer(path: str, worker: int, count: int) -> None:
    history = LockedFileHistory(Path(path))
    for i in range(count):
        history.store_string(f"w{worker} entry {i}\nsecond line {i}")


def test_two_processes_append_input_history_without_mixing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "input-history"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_history_writer, args=(str(path), w, 200)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0]
    entries = list(LockedFileHistory(path).load_history_strings())
    assert len(entries) == 400
    for entry in entries:
        head, second = entry.split("\n")
        assert second == "second line " + head.rsplit(" ", 1)[1]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_unwritable_input_history_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    history = LockedFileHistory(blocker / "input-history")  # parent is a file
    history.store_string("hello")
    assert list(history.load_history_strings()) == []
    assert history.failed


# -- llmcli history ------------------------------------------------------------------------------


def test_history_cli_list_show_rm() -> None:
    store = HistoryStore(paths.conversations_db())
    first = _fill(store, "What is 2+2?", "4")
    second = _fill(store, "Hello", "Hi there", model="other")
    store.close()

    listed = run_cli("history", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [second, first]
    assert rows[1]["title"] == "What is 2+2?" and rows[1]["message_count"] == 2

    plain = run_cli("history", "list")
    assert plain.stdout.decode().splitlines()[0].startswith(f"{second}\t")

    shown = run_cli("history", "show", str(first), "--json")
    data = json.loads(shown.stdout)
    assert [m["content"] for m in data["messages"]] == ["What is 2+2?", "4"]
    text = run_cli("history", "show", str(first)).stdout.decode()
    assert "## User" in text and "What is 2+2?" in text

    refused = run_cli("history", "rm", str(first))  # a pipe: no one to ask
    assert refused.returncode == 2 and b"--yes" in refused.stderr
    assert run_cli("history", "show", str(first)).returncode == 0  # nothing removed
    removed = run_cli("history", "rm", str(first), "--yes")
    assert removed.returncode == 0
    missing = run_cli("history", "show", str(first))
    assert missing.returncode == 1
    assert f"no conversation {first}" in missing.stderr.decode()
    assert run_cli("history", "rm", str(first), "--json", "--yes").returncode == 1


def test_empty_history_lists_nothing() -> None:
    result = run_cli("history", "list", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


def test_corrupt_database_fails_history_commands_only() -> None:
    db = paths.conversations_db()
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"garbage" * 1000)
    listed = run_cli("history", "list")
    assert listed.returncode == 65
    message = listed.stderr.decode()
    assert str(db) in message and "Traceback" not in message
    chat = run_cli("chat", input="hello\n")
    assert chat.returncode == 65 and str(db) in chat.stderr.decode()
    # commands that do not use the history are unaffected
    assert run_cli("ask", "--max-tokens", "2", "hi").returncode == 0
    assert run_cli("--help").returncode == 0
