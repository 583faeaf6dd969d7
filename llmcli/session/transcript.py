"""Transcripts: a conversation written to a file (``/save``) and read back (``/load``).

Two formats, chosen by the file's suffix: ``.json`` is exact (what ``/load`` reads
back byte for byte); anything else is Markdown for people, with an invisible HTML
comment before each message so ``/load`` can split it again whatever headings the
answers themselves contain.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from llmcli.errors import DataError, StorageError
from llmcli.paths import user_path
from llmcli.session.conversation import ChatMessage, Conversation

FORMAT = "llmcli-conversation"
VERSION = 1
MAX_TRANSCRIPT_BYTES = 16 * 1024 * 1024
ROLES = ("system", "user", "assistant")

_MARKER = re.compile(r"^<!-- llmcli:message role=(system|user|assistant)( interrupted)? -->$")
_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant"}


def default_name(conversation: Conversation) -> str:
    return f"conversation-{conversation.id}.md" if conversation.id else "conversation.md"


def is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def to_json(conversation: Conversation, *, model: str | None) -> str:
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "system": conversation.system,
        "messages": [
            {"role": m.role, "content": m.content}
            | ({"interrupted": True} if m.interrupted else {})
            for m in conversation.messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def to_markdown(conversation: Conversation, *, model: str | None, markers: bool = True) -> str:
    """Markdown for people; ``markers`` adds the comments that ``/load`` splits on."""
    title = conversation.title or "Conversation"
    lines = [f"# {title}", ""]
    if model:
        lines += [f"Model: `{model}`", ""]
    entries = [ChatMessage("system", conversation.system)] if conversation.system else []
    for message in entries + conversation.messages:
        flag = " interrupted" if message.interrupted else ""
        heading = _HEADINGS[message.role] + (" (interrupted)" if message.interrupted else "")
        if markers:
            lines.append(f"<!-- llmcli:message role={message.role}{flag} -->")
        lines += [f"## {heading}", ""]
        lines += [message.content, ""]
    return "\n".join(lines)


def save_transcript(conversation: Conversation, path: Path, *, model: str | None) -> Path:
    text = (
        to_json(conversation, model=model)
        if is_json(path)
        else to_markdown(conversation, model=model)
    )
    try:
        user_path(str(path)).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}", hint="choose another file name"
        ) from exc
    return path


def load_transcript(path: Path) -> Conversation:
    """Read a transcript that ``/save`` wrote (JSON or Markdown)."""
    path = user_path(str(path))
    from llmcli.bounded import FileTooLarge, read_bounded

    try:  # a FIFO or device named here must not hang the chat
        data = read_bounded(path, MAX_TRANSCRIPT_BYTES)
    except FileTooLarge:
        data = b"\0" * (MAX_TRANSCRIPT_BYTES + 1)
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}", hint="check the file name"
        ) from exc
    if len(data) > MAX_TRANSCRIPT_BYTES:
        raise DataError(f"{path} is larger than 16 MiB", hint="is it really a transcript?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text", hint="load a file that /save wrote") from None
    conversation = from_json(text, path) if is_json(path) else from_markdown(text, path)
    if not conversation.messages:
        raise DataError(f"{path} holds no messages", hint="load a file that /save wrote")
    return conversation


def from_json(text: str, path: Path) -> Conversation:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON (line {exc.lineno})", hint="load a file that /save wrote"
        ) from None
    except RecursionError:
        raise DataError(
            f"{path} is nested too deeply to be a transcript", hint="load a file that /save wrote"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise DataError(f"{path} is not an llmcli transcript", hint="load a file that /save wrote")
    system = data.get("system")
    conversation = Conversation(system=system if isinstance(system, str) and system else None)
    for index, item in enumerate(data["messages"]):
        role = item.get("role") if isinstance(item, dict) else None
        content = item.get("content") if isinstance(item, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise DataError(
                f"{path}: message {index + 1} needs a role (system, user or assistant) "
                "and a text content",
                hint="load a file that /save wrote",
            )
        _add(conversation, role, content, bool(item.get("interrupted")))
    return conversation


def from_markdown(text: str, path: Path) -> Conversation:
    conversation = Conversation()
    role: str | None = None
    interrupted = False
    body: list[str] = []
    for line in text.split("\n"):
        match = _MARKER.match(line)
        if match is None:
            body.append(line)
            continue
        if role is not None:
            _add(conversation, role, _body(body), interrupted)
        role, interrupted, body = match[1], bool(match[2]), []
    if role is None:
        raise DataError(
            f"{path} has no llmcli message markers",
            hint="load a Markdown or JSON file that /save wrote",
        )
    _add(conversation, role, _body(body), interrupted)
    return conversation


def _body(lines: list[str]) -> str:
    """The message text: the lines after the '## Role' heading, blank edges removed."""
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def _add(conversation: Conversation, role: str, content: str, interrupted: bool) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in content):  # JSON "\\ud800": not text
        raise DataError(
            f"a {role} message holds a lone surrogate (\\u{ord(_first_surrogate(content)):04x}), "
            "which is not text",
            hint="load a file that /save wrote",
        )
    if role == "system":
        conversation.system = content or None
    else:
        conversation.add(role, content, interrupted=interrupted)


def _first_surrogate(text: str) -> str:
    return next(ch for ch in text if "\ud800" <= ch <= "\udfff")
