"""Slash commands: their table, parsing, ``/set`` values, and tab completion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from llmcli.engine.base import Sampling
from llmcli.errors import UsageError
from llmcli.knobs import KNOBS, Knob, parse_value, rule
from llmcli.knobs import describe as describe_knob


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    help: str
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command("help", "", "show this help"),
    Command("exit", "", "leave the chat (also /bye, Ctrl-D)", ("bye", "quit")),
    Command("clear", "", "start a new conversation (the old one stays in history)"),
    Command("system", "[TEXT]", "set the system prompt (no TEXT: show it; '-': remove it)"),
    Command("set", "[PARAM [VALUE]]", "change a sampling setting (no value: show it)"),
    Command("schema", "[SCHEMA|off]", "answer in JSON matching SCHEMA (JSON, a file, 'a, b int')"),
    Command("model", "REF", "switch to another model, keeping the conversation"),
    Command("retry", "", "generate the last answer again"),
    Command("undo", "", "drop the last exchange (your message and its answer)"),
    Command(
        "save",
        "[FILE]",
        "write the transcript (.json exact, otherwise Markdown; no FILE: the data dir)",
    ),
    Command("load", "FILE", "continue a transcript written by /save"),
    Command("tokens", "", "context used and its budget"),
    Command("stats", "", "speed of the last answer and of the session"),
)

_BY_NAME = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}


def find_command(name: str) -> Command | None:
    return _BY_NAME.get(name.lower())


def parse_slash(line: str) -> tuple[str, str] | None:
    """``'/set top_k 5'`` → ``('set', 'top_k 5')``; None when the line is a message.

    A line starting with ``//`` is a message that begins with one ``/``.
    """
    stripped = line.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    head, _, rest = stripped[1:].partition(" ")
    return head.lower(), rest.strip()


def unescape_message(line: str) -> str:
    return line.lstrip()[1:] if line.lstrip().startswith("//") else line


def help_lines() -> list[str]:
    rows = [(f"/{c.name} {c.args}".rstrip(), c.help) for c in COMMANDS]
    width = max(len(left) for left, _ in rows) + 2
    lines = [f"  {left:<{width}}{text}" for left, text in rows]
    lines += [
        "",
        '  Enter sends; Alt-Enter or Esc Enter adds a line; a message opened with """ runs',
        '  until a closing """. Up/Down recall earlier input, Ctrl-R searches it, Tab',
        "  completes commands. Ctrl-C stops an answer (keeping what was written) or clears",
        "  the line; Ctrl-D on an empty line leaves. Start a message with // to send a /.",
    ]
    return lines


# -- /set -----------------------------------------------------------------------------------

PARAMS: dict[str, Knob] = dict(KNOBS)
"""What ``/set`` can change: every sampling knob (:data:`llmcli.knobs.KNOBS`)."""


def apply_setting(sampling: Sampling, text: str) -> str:
    """Apply ``'PARAM VALUE'`` to ``sampling``; return what it is now, for the user."""
    name, _, value = text.strip().partition(" ")
    name = name.lower().replace("-", "_")
    knob = PARAMS.get(name)
    if knob is None:
        raise UsageError(
            f"unknown setting {name!r}" if name else "/set needs a setting and a value",
            hint="one of: " + ", ".join(PARAMS),
        )
    value = value.strip()
    if not value:  # "/set temperature": show it, as "/set" shows them all
        return f"{name} = {describe(sampling, name)}"
    try:
        parsed = parse_value(knob, value)
    except ValueError:
        raise UsageError(f"{name} must be {rule(knob)}, not {value!r}") from None
    setattr(sampling, name, parsed)
    if name == "temperature":
        sampling.greedy = False  # asking for a temperature means sampling again
    return f"{name} = {describe(sampling, name)}"


def describe(sampling: Sampling, name: str) -> str:
    return describe_knob(PARAMS[name], getattr(sampling, name))


def settings_lines(sampling: Sampling) -> list[str]:
    width = max(len(name) for name in PARAMS) + 1
    lines = [f"  {name:<{width}}{describe(sampling, name)}" for name in PARAMS]
    if sampling.greedy:
        lines.append("  (greedy: temperature, top_p, top_k and min_p are not used)")
    return lines


# -- completion ---------------------------------------------------------------------------


class SlashCompleter(Completer):
    """Tab completes command names, ``/set`` settings, and file names for /save and /load."""

    def __init__(self) -> None:
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        head, space, rest = text[1:].partition(" ")
        if not space:
            for name in sorted(_BY_NAME):
                if name.startswith(head.lower()):
                    yield Completion(f"/{name}", start_position=-len(text))
            return
        command = find_command(head)
        if command is None:
            return
        if command.name == "set" and " " not in rest:
            for name in PARAMS:
                if name.startswith(rest.lower()):
                    yield Completion(name, start_position=-len(rest))
        elif command.name in ("save", "load"):
            yield from self._paths.get_completions(Document(rest, len(rest)), event)
