"""Where the chat's messages come from: a prompt_toolkit prompt, or lines of a pipe.

Both readers return one message per call and raise ``EOFError`` at the end (Ctrl-D,
end of input). The terminal reader raises ``KeyboardInterrupt`` for Ctrl-C, which
the loop takes as "clear the line".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import AnyFormattedText

from llmcli.errors import DataError
from llmcli.repl.keys import FENCE, in_open_block, unwrap_block
from llmcli.session.inputs import MAX_STDIN_BYTES, decode_input


class Reader(Protocol):
    def read(self) -> str: ...


class LineReader:
    """One message per line from a pipe; a ``\"\"\"`` line opens a multi-line message.

    A binary stream is read with a bound per line and checked like ``ask``'s stdin
    (UTF-8, no NUL bytes), so bad input is a clear error, not a crash.
    """

    def __init__(self, stream: IO[str] | IO[bytes]) -> None:
        self.stream = stream

    def read(self) -> str:
        while True:
            line = self._line()
            if not line.strip():
                continue
            if not in_open_block(line):
                return unwrap_block(line)
            lines = [line]
            while in_open_block("\n".join(lines)):
                try:
                    lines.append(self._line())
                except EOFError:
                    lines.append(FENCE)  # an unclosed block ends with the input
            return unwrap_block("\n".join(lines))

    def _line(self) -> str:
        line = self.stream.readline(MAX_STDIN_BYTES + 1)
        if not line:
            raise EOFError
        if isinstance(line, bytes):
            if len(line) > MAX_STDIN_BYTES:
                raise DataError(
                    f"a line on stdin is longer than {MAX_STDIN_BYTES // (1024 * 1024)} MiB",
                    hint="send shorter messages",
                )
            line = decode_input(line, errors="strict", source="stdin", fix="convert it with iconv")
        return line.rstrip("\r\n")


PromptText = Callable[[], "AnyFormattedText"]


class TerminalReader:
    """prompt_toolkit with persistent history, completion, and chat key bindings."""

    def __init__(self, history_path: Path, prompt: PromptText) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.styles import Style

        from llmcli.repl.commands import SlashCompleter
        from llmcli.repl.history_file import LockedFileHistory
        from llmcli.repl.keys import chat_key_bindings

        self.history = LockedFileHistory(history_path)
        self._prompt = prompt
        self.session: PromptSession[str] = PromptSession(
            history=self.history,
            multiline=True,
            key_bindings=chat_key_bindings(),
            completer=SlashCompleter(),
            complete_while_typing=False,
            prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ",
            style=Style.from_dict({"model": "bold", "usage": "ansibrightblack"}),
            enable_history_search=False,
            mouse_support=False,
        )

    def read(self) -> str:
        text = self.session.prompt(self._prompt)
        return unwrap_block(text)
