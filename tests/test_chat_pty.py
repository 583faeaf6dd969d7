"""``llmcli chat`` in a real pseudo-terminal (pexpect) with the real SmolLM2 model.

The chat runs as ``python -m llmcli chat`` exactly as a user starts it; the tests
type keys (Enter, Up, Esc Enter, Ctrl-C, bracketed paste) and read the screen.
What was said is checked in the conversations database the chat saved as it went.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from llmcli import paths
from llmcli.session.history import HistoryStore
from tests.conftest import run_cli

# A new prompt: prompt_toolkit turns bracketed paste on as it starts reading (in raw
# mode), then draws "MODEL USED/CTX>". Matching that start matters: the accepted
# input's final redraw shows the old prompt too, while the tty is back in cooked mode.
PROMPT = re.compile(rb"\x1b\[\?2004h[^\n]*?\d+/\d+(?:\x1b\[0m)?>")
STATS = re.compile(rb"\d+ tokens? \xc2\xb7.*?(stop|length|interrupted)")
UP = "\x1b[A"
CTRL_C = "\x03"
CTRL_D = "\x04"
TIMEOUT = 240


class Chat:
    """One ``llmcli chat`` process in a terminal 200 columns wide."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", NO_COLOR="1")
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "llmcli", "chat", *args],
            env=env,
            dimensions=(50, 200),
            timeout=TIMEOUT,
        )
        self.prompt()

    def prompt(self) -> bytes:
        self.child.expect(PROMPT)
        return bytes(self.child.before)

    def send(self, text: str) -> None:
        self.child.send(text + "\r")

    def ask(self, text: str) -> bytes:
        """Send a message; return the screen output up to the answer's stats line."""
        self.send(text)
        self.child.expect(STATS)
        shown = bytes(self.child.before)
        self.prompt()
        return shown

    def command(self, text: str) -> bytes:
        self.send(text)
        return self.prompt()

    def exit(self, how: str = "/exit\r") -> int:
        self.child.send(how)
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)


def saved(conv_id: int | None = None) -> list[tuple[str, str, bool]]:
    store = HistoryStore(paths.conversations_db())
    target = conv_id if conv_id is not None else store.last_id()
    assert target is not None, "nothing was saved"
    return [(m.role, m.content, m.interrupted) for m in store.load(target).messages]


def test_two_turn_conversation() -> None:
    chat = Chat("--greedy", "--max-tokens", "16")
    chat.ask("My name is Bob.")
    chat.ask("What is my name?")
    assert chat.exit() == 0
    messages = saved()
    assert [(role, text) for role, text, _ in messages[::2]] == [
        ("user", "My name is Bob."),
        ("user", "What is my name?"),
    ]
    assert all(text.strip() for _, text, _ in messages[1::2])


def test_input_history_is_recalled_with_up_in_a_second_session() -> None:
    first = Chat("--greedy", "--max-tokens", "4", "--quiet")
    first.send("remember the words purple walrus")
    first.prompt()
    assert first.exit() == 0

    second = Chat("--greedy", "--max-tokens", "4", "--quiet")
    second.child.send(UP + UP)  # the newest entry is "/exit", the one before our message
    second.child.expect("purple walrus")
    second.send("")
    second.prompt()
    assert second.exit(CTRL_D) == 0
    assert saved()[0][1] == "remember the words purple walrus"


def test_ctrl_c_stops_a_long_answer_and_the_next_message_works() -> None:
    question = "Write a very long essay about the history of the Roman Empire."
    start = run_cli("ask", "--greedy", "--max-tokens", "3", "--json", question)
    first_word = json.loads(start.stdout)["text"].split()[0]

    chat = Chat("--greedy", "--max-tokens", "400")
    chat.send(question)
    chat.child.expect(re.escape(first_word))
    chat.child.send(CTRL_C)
    chat.child.expect("interrupted")
    chat.prompt()
    chat.ask("Thank you. Now say hello.")
    assert chat.exit() == 0

    messages = saved()
    assert [m[0] for m in messages] == ["user", "assistant", "user", "assistant"]
    partial = messages[1]
    assert partial[2] is True and partial[1].startswith(first_word)
    assert messages[3][2] is False and messages[3][1].strip()
    store = HistoryStore(paths.conversations_db())
    conv_id = store.last_id()
    assert conv_id is not None
    stats = list(store.message_stats(conv_id).values())
    assert stats[0]["finish_reason"] == "interrupted"
    assert stats[0]["generated_tokens"] < 400


def test_ctrl_c_at_the_prompt_clears_the_line() -> None:
    chat = Chat("--quiet")
    chat.child.send("this line is abandoned")
    chat.child.expect("abandoned")
    chat.child.send(CTRL_C)
    chat.prompt()
    assert chat.exit() == 0
    assert HistoryStore(paths.conversations_db()).last_id() is None  # nothing was sent


def test_slash_commands(tmp_path: Path) -> None:
    transcript = tmp_path / "chat.json"
    chat = Chat("--greedy", "--max-tokens", "24")
    chat.child.send("/hel\t")  # Tab completes the command
    chat.child.expect("/help")
    help_text = chat.command("")
    assert b"/retry" in help_text and b"/undo" in help_text
    assert b"system prompt set" in chat.command("/system You answer in one short sentence.")
    assert b"max_tokens = 6" in chat.command("/set max_tokens 6")
    assert b"context used:" in chat.command("/tokens")

    chat.ask("Name a colour.")
    chat.ask("/retry")
    chat.ask("Name an animal.")
    assert b"dropped the last exchange" in chat.command("/undo")
    assert b"saved 2 messages" in chat.command(f"/save {transcript}")
    assert b"new conversation" in chat.command("/clear")
    chat.ask("A fresh start.")
    assert b"loaded 2 messages" in chat.command(f"/load {transcript}")
    chat.ask("And one more.")
    assert b"0 answers" not in chat.command("/stats")
    assert b"unknown command /frobnicate" in chat.command("/frobnicate")
    assert chat.exit() == 0

    data = json.loads(transcript.read_text())
    assert data["system"] == "You answer in one short sentence."
    assert [m["content"] for m in data["messages"]][0] == "Name a colour."
    loaded = saved()  # /load made a new conversation and the chat went on in it
    assert [m[1] for m in loaded][::2] == ["Name a colour.", "And one more."]
    rows = HistoryStore(paths.conversations_db()).conversations()
    assert len(rows) == 3  # the first chat, the one after /clear, the loaded one


def test_multiline_input_alt_enter_triple_quotes_and_paste() -> None:
    chat = Chat("--greedy", "--max-tokens", "4", "--quiet")
    chat.child.send("line one\x1b\rline two\r")  # Esc Enter adds a line
    chat.prompt()
    chat.child.send('"""\rblock one\rblock two\r"""\r')
    chat.prompt()
    chat.child.send("\x1b[200~pasted one\npasted two\x1b[201~")  # bracketed paste
    chat.child.expect("pasted two")
    chat.send("")
    chat.prompt()
    assert chat.exit() == 0
    users = [text for role, text, _ in saved() if role == "user"]
    assert users == ["line one\nline two", "block one\nblock two", "pasted one\npasted two"]


@pytest.mark.slow
def test_small_context_trims_the_oldest_exchanges() -> None:
    chat = Chat("--ctx", "256", "--greedy", "--max-tokens", "32")
    shown = b"".join(
        chat.ask(f"Tell me a long story about the number {i}, please.") for i in range(6)
    )
    assert b"oldest exchange" in shown
    tokens = chat.command("/tokens")
    assert b"dropped (oldest):" in tokens
    assert chat.exit() == 0
    assert len(saved()) == 12


def test_continue_after_exit() -> None:
    first = Chat("--greedy", "--max-tokens", "8")
    first.ask("Remember the word banana.")
    assert first.exit() == 0

    again = Chat("--greedy", "--max-tokens", "8", "--continue")
    assert b"resumed (2 messages)" in again.child.before
    again.ask("Which word did I ask you to remember?")
    assert again.exit() == 0
    messages = saved()
    assert len(messages) == 4 and messages[0][1] == "Remember the word banana."


CTRL_R = "\x12"


def test_ctrl_r_then_enter_sends_the_line_it_found() -> None:
    """As in readline: Enter ends the search and sends the line found."""
    chat = Chat("--greedy", "--max-tokens", "2", "--quiet")
    chat.send("remember the words purple walrus")
    chat.prompt()
    chat.send("something else")
    chat.prompt()
    chat.child.send(CTRL_R + "walrus")
    chat.child.expect("I-search backward")
    chat.child.expect("walrus")
    chat.child.send("\r")
    chat.prompt()
    assert chat.exit() == 0
    users = [text for role, text, _ in saved() if role == "user"]
    assert users == [
        "remember the words purple walrus",
        "something else",
        "remember the words purple walrus",
    ]


def test_set_without_a_value_shows_it_and_save_without_a_name_says_where() -> None:
    chat = Chat("--max-tokens", "4", "--quiet", "-t", "0.3")
    assert b"temperature = 0.3" in chat.command("/set temperature")
    assert b"max_tokens = 4" in chat.command("/set max_tokens")
    chat.send("Hello.")
    chat.prompt()
    shown = chat.command("/save").decode()
    assert chat.exit() == 0
    conv_id = HistoryStore(paths.conversations_db()).last_id()
    written = paths.transcripts_dir() / f"conversation-{conv_id}.md"
    assert written.is_absolute() and written.is_file()
    assert f"saved 2 messages to {written}" in re.sub(r"\s*\r?\n\s*", "", shown)
    assert "Hello." in written.read_text()
