"""Several llmcli processes sharing one history: nothing lost, mixed up, or "locked".

The history is SQLite in WAL mode with a busy timeout, each message written in its
own short ``BEGIN IMMEDIATE`` transaction; two pulls of one model are serialised by a
lock file (``tests/faults/test_pull_faults.py`` shows the second giving up with 75).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from llmcli import paths
from llmcli.session.conversation import ChatMessage
from llmcli.session.history import HistoryStore
from tests.conftest import run_cli

PYTHON = sys.executable


def _start(*args: str, stdin: Path | None = None) -> subprocess.Popen[bytes]:
    with open(stdin or "/dev/null", "rb") as source:
        return subprocess.Popen(
            [PYTHON, "-m", "llmcli", *args],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def _conversations() -> list[Any]:
    listed = run_cli("history", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    conversations = []
    for info in json.loads(listed.stdout):
        shown = run_cli("history", "show", str(info["id"]), "--json")
        assert shown.returncode == 0, shown.stderr
        conversations.append(json.loads(shown.stdout))
    return conversations


@pytest.mark.slow
def test_two_chats_and_three_ask_continues_at_once(tmp_path: Path) -> None:
    warm = run_cli("ask", "-n", "1", "hi")  # the probe's verdict, so no process probes below
    assert warm.returncode == 0, warm.stderr
    chats = {}
    for name in ("A", "B"):
        script = tmp_path / f"chat-{name}"
        script.write_text("".join(f"{name}{i}: say one word.\n" for i in range(3)))
        chats[name] = _start("chat", "-q", "--greedy", "-n", "2", stdin=script)
    asks = [_start("ask", "-c", "--greedy", "-n", "2", f"C{i}: say one word.") for i in range(3)]
    for proc in [*chats.values(), *asks]:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert b"locked" not in err and b"busy" not in err

    conversations = _conversations()
    users = [m["content"] for c in conversations for m in c["messages"] if m["role"] == "user"]
    expected = [f"{n}{i}: say one word." for n in "AB" for i in range(3)]
    expected += [f"C{i}: say one word." for i in range(3)]
    assert sorted(users) == sorted(expected)  # every message once, none lost
    for conversation in conversations:
        roles = [m["role"] for m in conversation["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)  # each answer after its question
        texts = [m["content"] for m in conversation["messages"] if m["role"] == "user"]
        for name in "AB":
            mine = [t for t in texts if t.startswith(name)]
            assert mine in ([], [f"{name}{i}: say one word." for i in range(3)])  # in order


def _first_use(db: str, start_at: float, worker: int) -> None:
    while time.time() < start_at:  # all processes open the new database together
        pass
    store = HistoryStore(Path(db))
    conversation = store.create(model=f"w{worker}")
    for i in range(20):
        store.append(conversation, ChatMessage("user", f"w{worker}-{i}"))
    store.close()


def test_many_processes_creating_the_history_at_the_same_moment(tmp_path: Path) -> None:
    """The first use of a fresh install by several processes: schema creation and the
    switch to WAL mode race; none may fail."""
    db = tmp_path / "new" / "conversations.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3  # after the spawned interpreters have started
    workers = [ctx.Process(target=_first_use, args=(str(db), start_at, w)) for w in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * 6
    store = HistoryStore(db)
    conversations = store.conversations()
    assert sorted(c.model or "" for c in conversations) == [f"w{w}" for w in range(6)]
    for info in conversations:
        contents = [m.content for m in store.load(info.id).messages]
        assert contents == [f"{info.model}-{i}" for i in range(20)]


def test_a_long_write_lock_makes_others_wait_not_fail() -> None:
    """Another process holding the write lock for a while (a slow disk, a big /load)
    only delays ``ask -c``; it is not an error."""
    import sqlite3

    store = HistoryStore()
    store.append(store.create(model="m"), ChatMessage("user", "first"))
    store.close()
    holder = sqlite3.connect(paths.conversations_db(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    proc = _start("ask", "-c", "--greedy", "-n", "2", "second")
    time.sleep(6)  # longer than the whole ask takes, shorter than the 10 s busy timeout
    assert proc.poll() is None  # it cannot save the question, so it is still waiting
    holder.execute("COMMIT")
    holder.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    messages = HistoryStore().load(1).messages
    assert [m.content for m in messages][:2] == ["first", "second"]
    assert [m.role for m in messages] == ["user", "user", "assistant"]
