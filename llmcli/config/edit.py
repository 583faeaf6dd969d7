"""``config set``/``unset``: change one key and keep the rest of the file as it is.

The editor works line by line and verifies its result by parsing it; when the
file's shape defeats it, the file is rewritten whole (comments lost, said so).
``tomlkit`` was considered and not taken: it would be a new dependency on every
start-up path that reads settings, while this editor is small, tested against the
parser, and never writes a file that does not parse to what was asked.
"""

from __future__ import annotations

import datetime
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from llmcli.atomic import write_atomic
from llmcli.config.load import ConfigFile, _walk_lines, line_key, read_config
from llmcli.config.schema import KEYS, MODELS_TABLE, Key, Settings, parse_text, unknown_key_message
from llmcli.errors import UsageError


@dataclass(frozen=True)
class KeyPath:
    """A key as typed for ``config set``: ``temperature`` or ``models.NAME.temperature``."""

    table: tuple[str, ...]
    key: Key

    @property
    def dotted(self) -> str:
        return ".".join((*self.table, self.key.name))


def parse_key_path(text: str) -> KeyPath:
    """``models.NAME.KEY`` (NAME may contain dots) or a top-level key; ``UsageError`` else."""
    if text.startswith(MODELS_TABLE + "."):
        name, _, key_name = text[len(MODELS_TABLE) + 1 :].rpartition(".")
        if not name:
            raise UsageError(
                f"bad key {text!r}", hint="write models.NAME.KEY, e.g. models.qwen.temperature"
            )
        key = KEYS.get(key_name)
        if key is None or not key.per_model:
            allowed = sorted(k for k, v in KEYS.items() if v.per_model)
            raise UsageError(
                f"{unknown_key_message(key_name, allowed)} for models.{name}",
                hint="per-model keys: " + ", ".join(allowed),
            )
        return KeyPath((MODELS_TABLE, name), key)
    key = KEYS.get(text)
    if key is None:
        raise UsageError(
            unknown_key_message(text, sorted(KEYS)),
            hint="keys: " + ", ".join(sorted(KEYS)) + ", models.NAME.KEY",
        )
    return KeyPath((), key)


@dataclass(frozen=True)
class WriteResult:
    path: Path
    value: Any
    kept_comments: bool


def set_config_value(path: Path, key_path: KeyPath, text: str) -> WriteResult:
    """Validate ``text`` for the key and write it, keeping the rest of the file as it is."""
    try:
        value = parse_text(key_path.key, text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if key_path.key.kind == "gpu_layers" and value.isdigit():
        value = int(value)
    return _rewrite(path, key_path, value)


def unset_config_value(path: Path, key_path: KeyPath) -> WriteResult | None:
    """Remove the key from the file; ``None`` when it was not there."""
    config = read_config(path)
    if key_path.key.name not in _table_of(config, key_path.table):
        return None
    return _rewrite(path, key_path, None)


def _table_of(config: ConfigFile, table: tuple[str, ...]) -> dict[str, Any]:
    return config.models.get(table[1], {}) if table else config.values


def _rewrite(path: Path, key_path: KeyPath, value: Any) -> WriteResult:
    config = read_config(path)  # refuses to touch a damaged file
    expected = tomllib.loads(config.text) if config.exists else {}
    _apply(expected, key_path, value)
    new_text = edit_toml_text(config.text, key_path.table, key_path.key.name, value)
    kept = new_text is not None and _parses_to(new_text, expected)
    if not kept or new_text is None:
        new_text = dump_toml(expected)
    write_atomic(path, new_text)
    return WriteResult(path, value, kept or not config.text.strip())


def _apply(data: dict[str, Any], key_path: KeyPath, value: Any) -> None:
    table = data
    for part in key_path.table:
        table = table.setdefault(part, {})
    if value is None:
        table.pop(key_path.key.name, None)  # an emptied [models.NAME] table stays, harmless
    else:
        table[key_path.key.name] = value


def _parses_to(text: str, expected: dict[str, Any]) -> bool:
    try:
        return tomllib.loads(text) == expected
    except tomllib.TOMLDecodeError:
        return False


def edit_toml_text(text: str, table: tuple[str, ...], key: str, value: Any) -> str | None:
    """Replace, add or (``value=None``) remove one ``key = value`` line, keeping the rest.

    Returns ``None`` when the file's shape defeats line editing; callers verify the
    result by parsing it and fall back to rewriting the whole file.
    """
    lines = text.splitlines()
    walked = _walk_lines(text)
    found = [i for i, current, line in walked if current == table and line_key(line) == key]
    if len(found) > 1:
        return None
    if found:
        index = found[0]
        if value is None:
            del lines[index]
        else:
            lines[index] = f"{format_key(key)} = {format_value(value)}{_comment_of(lines[index])}"
        return "\n".join(lines) + "\n"
    if value is None:
        return None
    new_line = f"{format_key(key)} = {format_value(value)}"
    at = _insertion_point(lines, walked, table, key)
    if at is None:
        header = "[" + ".".join(format_key(part) for part in table) + "]"
        block = ([""] if lines and lines[-1].strip() else []) + [header, new_line]
        return "\n".join(lines + block) + "\n"
    index, blank_after = at
    lines[index:index] = [new_line, ""] if blank_after else [new_line]
    return "\n".join(lines) + "\n"


def _insertion_point(
    lines: list[str],
    walked: list[tuple[int, tuple[str, ...] | None, str]],
    table: tuple[str, ...],
    key: str,
) -> tuple[int, bool] | None:
    """Where a new key goes: after its commented-out example, after the table's last
    assignment, or (top level) before the first table; ``None``: append a new table."""
    section = [i for i, current, _ in walked if current == table]
    if not section and table:
        return None
    example = re.compile(rf"^\s*#\s*{re.escape(key)}\s*=")
    for i in section:
        if example.match(lines[i]):
            return i + 1, False
    content = [i for i in section if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    if content:
        return content[-1] + 1, False
    first_header = next((i for i, current, _ in walked if current != ()), None)
    if first_header is None:
        return len(lines), False
    while first_header > 0 and lines[first_header - 1].lstrip().startswith("#"):
        first_header -= 1
    return first_header, True


def _comment_of(line: str) -> str:
    """The trailing ``# comment`` of a one-line assignment, with its leading spaces."""
    for match in re.finditer("#", line):
        head = line[: match.start()]
        if line_key(head) is not None:
            return line[len(head.rstrip()) :]
    return ""


_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


def format_key(key: str) -> str:
    return key if _BARE_KEY_RE.fullmatch(key) else format_value(key)


def format_value(value: Any) -> str:
    """A TOML literal for any value tomllib returns."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
        )
    if isinstance(value, str):
        return '"' + "".join(_escape(ch) for ch in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{format_key(k)} = {format_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04x}"
    return ch


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write parsed TOML back: top-level values first, then each table under its header.

    Used only when line editing cannot keep the file's layout; comments are lost.
    """
    lines: list[str] = []

    def table(prefix: tuple[str, ...], values: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in values.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.extend(["", "[" + ".".join(format_key(part) for part in prefix) + "]"])
        lines.extend(f"{format_key(k)} = {format_value(v)}" for k, v in scalars.items())
        for name, sub in tables.items():
            table((*prefix, name), sub)

    table((), data)
    return "\n".join(lines).lstrip("\n") + "\n" if lines else ""


def new_config_template() -> str:
    """What ``config edit`` starts from: every key, commented out, with its default."""
    defaults = Settings()
    lines = [
        "# llmcli configuration (TOML). Precedence: command-line flag > LLMCLI_* environment",
        "# variable > [models.NAME] table > top-level value here > built-in default.",
        "# 'llmcli config show' prints the settings in force and where each comes from.",
        "",
    ]
    for key in KEYS.values():
        default = getattr(defaults, key.name)
        shown = format_value(default if default is not None else key.example)
        note = "" if default is not None else f" (default: {key.unset})"
        lines.append(f"# {key.name} = {shown}  # {key.help}{note}")
    lines += [
        "",
        "# Per-model overrides: NAME is what you pass to -m (alias, OWNER/REPO[:QUANT], file).",
        '# [models."bartowski/Qwen2.5-0.5B-Instruct-GGUF"]',
        "# temperature = 0.2",
        '# system = "Answer in one sentence."',
    ]
    return "\n".join(lines) + "\n"
