"""Concurrent turns stay paired; removing a conversation a chat is writing is a clear error.

``ask -c`` saves its question together with its answer, in one transaction: turns run at
the same moment on one conversation are stored as adjacent question/answer pairs, each
answered from the conversation as it was when that turn started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from llmcli.session.conversation import ChatMessage
from llmcli.session.history import HistoryStore
from tests.conftest import run_cli

PYTHON = sys.executable


def test_eight_ask_continue_at_once_store_adjacent_pairs() -> None:
    store = HistoryStore()
    conv = store.create(model="SmolLM2-135M-Instruct.Q4_1")
    store.append(conv, ChatMessage("user", "Hello."))
    store.append(conv, ChatMessage("assistant", "Hi!"))
    store.close()
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "llmcli", "ask", "-c", "--greedy", "-n", "3", f"Q{i}: one word."],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    shown = json.loads(run_cli("history", "show", str(conv), "--json").stdout)
    messages = shown["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * 9, roles  # alternating: every answer after its Q
    questions = sorted(m["content"] for m in messages[2::2])
    assert questions == [f"Q{i}: one word." for i in range(8)]
    # The conversation is still usable by a template that needs alternating roles.
    again = run_cli("ask", "-c", "--greedy", "-n", "2", "Last one.")
    assert again.returncode == 0, again.stderr


def test_history_rm_of_a_conversation_a_chat_is_writing_is_a_clear_error() -> None:
    chat = subprocess.Popen(
        [PYTHON, "-m", "llmcli", "chat", "-q", "--greedy", "-n", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert chat.stdin is not None and chat.stdout is not None
    chat.stdin.write(b"Say hi.\n")
    chat.stdin.flush()
    chat.stdout.readline()  # the first answer is out, so the conversation exists
    deadline = time.monotonic() + 60
    while run_cli("history", "list", "--json").stdout.strip() in (b"", b"[]"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    removed = run_cli("history", "rm", "--yes", "1")
    assert removed.returncode == 0, removed.stderr
    _, err = chat.communicate(b"Say bye.\n", timeout=120)
    text = err.decode()
    assert "unreadable" not in text and "move it aside" not in text, text
    assert "internal error" not in text and "Traceback" not in text, text
    assert "was removed" in text, text
