"""``llmcli chat`` in a real terminal, interrupted the way impatient people do: Ctrl-C twice in
the middle of an answer, then SIGTERM from outside. The chat goes on after Ctrl-C, and
what the history and a saved transcript say stays the same as what was shown."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pexpect
import pytest

from tests.conftest import run_cli
from tests.test_chat_pty import CTRL_C, Chat, saved

QUESTION = "Write a very long essay about the history of the Roman Empire."


def _first_word() -> str:
    start = run_cli("ask", "--greedy", "--max-tokens", "3", "--json", QUESTION)
    assert start.returncode == 0, start.stderr
    return str(json.loads(start.stdout)["text"].split()[0])


@pytest.mark.slow
def test_ctrl_c_twice_then_a_transcript_that_matches_the_history(tmp_path: Path) -> None:
    first_word = _first_word()
    chat = Chat("--greedy", "--max-tokens", "400")
    chat.send(QUESTION)
    chat.child.expect(re.escape(first_word))
    chat.child.send(CTRL_C + CTRL_C)  # the second one lands on the abort, or the new prompt
    chat.child.expect("interrupted")
    chat.prompt()
    chat.ask("Thank you. Now say hello.")
    transcript = tmp_path / "chat.md"
    chat.command(f"/save {transcript}")
    assert chat.exit() == 0

    messages = saved()
    assert [(role, interrupted) for role, _, interrupted in messages] == [
        ("user", False),
        ("assistant", True),
        ("user", False),
        ("assistant", False),
    ]
    assert messages[1][1].startswith(first_word)
    text = transcript.read_text()
    for _, content, _ in messages:
        assert content.strip() in text


@pytest.mark.slow
def test_sigterm_ends_the_chat_and_keeps_the_question() -> None:
    first_word = _first_word()
    chat = Chat("--greedy", "--max-tokens", "400")
    chat.send(QUESTION)
    chat.child.expect(re.escape(first_word))
    chat.child.kill(signal.SIGTERM)
    chat.child.expect(pexpect.EOF)
    chat.child.close()
    assert chat.child.exitstatus == 143
    messages = saved()
    assert messages[0] == ("user", QUESTION, False)
    assert len(messages) <= 2 and all(role != "user" for role, _, _ in messages[1:])
