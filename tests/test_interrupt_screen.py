"""After Ctrl-C mid-answer, a real terminal shows exactly Rich's render of the kept text.

``llmcli ask -c`` and ``llmcli chat`` run in a pseudo-terminal with the real model;
the bytes they wrote are replayed through the terminal emulator of test_render, and
the screen is compared with a one-go render of the partial answer the history kept
(both save it, marked interrupted).
"""

from __future__ import annotations

import io
import os
import re
import sys
import time

import pexpect

from llmcli import paths
from llmcli.session.history import HistoryStore
from tests.test_render import Terminal, terminal_console

WIDTH, HEIGHT = 80, 30
QUESTION = "Write a long essay about the history of the Roman Empire, with headings and lists."
PROMPT = re.compile(r"\x1b\[\?2004h[^\n]*?\d+/\d+(?:\x1b\[0m)?>")


def _spawn(*args: str) -> tuple[pexpect.spawn, io.StringIO]:
    env = dict(os.environ, TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "llmcli", *args],
        env=env,
        dimensions=(HEIGHT, WIDTH),
        encoding="utf-8",
        timeout=240,
    )
    log = io.StringIO()
    child.logfile_read = log
    return child, log


def _screen(raw: str) -> list[str]:
    """What a terminal shows for ``raw`` (it draws nothing for the echoed Ctrl-C byte)."""
    terminal = Terminal(width=WIDTH, height=HEIGHT)
    terminal.feed(raw.replace("\x03", "").replace("\r\n", "\n"))
    return [line.rstrip() for line in terminal.scrollback(False)]


def _rich(text: str) -> list[str]:
    from llmcli.render.markdown import AnswerMarkdown

    file = io.StringIO()
    terminal_console(file, width=WIDTH, height=HEIGHT).print(AnswerMarkdown(text))
    return _screen(file.getvalue())


def _kept() -> str:
    store = HistoryStore(paths.conversations_db())
    conv_id = store.last_id()
    assert conv_id is not None
    answer = store.load(conv_id).messages[-1]
    assert answer.role == "assistant" and answer.interrupted
    return answer.content


def _interrupt_mid_answer(child: pexpect.spawn, after: float) -> None:
    child.expect("Roman")
    time.sleep(after)
    child.send("\x03")


def test_ask_interrupted_screen_is_rich_render_of_the_kept_text() -> None:
    for after in (0.3, 1.5):
        paths.conversations_db().unlink(missing_ok=True)
        child, log = _spawn("ask", "-c", "--greedy", "--max-tokens", "400", QUESTION)
        _interrupt_mid_answer(child, after)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        kept = _kept()
        assert kept.strip()
        assert _screen(log.getvalue()) == _rich(kept)


def test_chat_interrupted_screen_is_rich_render_of_the_kept_text() -> None:
    child, log = _spawn("chat", "--greedy", "--max-tokens", "400", "--quiet")
    child.expect(PROMPT)
    child.send(QUESTION + "\r")
    _interrupt_mid_answer(child, 1.0)
    child.expect("interrupted")
    child.expect(PROMPT)
    raw = log.getvalue()
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    # The answer starts once the prompt has left raw mode (bracketed paste off) and
    # ends where the dim notice begins.
    answer = raw.split("\x1b[?2004l")[1]
    answer = answer[: answer.index("interrupted")]
    answer = answer[: answer.rindex("\x1b[")]  # the notice's style
    assert _screen(answer) == _rich(_kept())
