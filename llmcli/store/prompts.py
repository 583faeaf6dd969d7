"""Saved prompts: reusable system prompt, prompt text, model, sampling and schema.

One TOML file per prompt under ``<config dir>/prompts/NAME.toml`` (``LLMCLI_HOME``
moves it with everything else), so a prompt can be read, copied and edited by
hand. The prompt text may hold placeholders, filled by :func:`fill_template`:

* ``{input}`` — the input: piped stdin, then the words after the prompt name;
* ``$1`` … ``$9`` — one word each (``$$`` is a literal ``$``).

A template with neither gets the input after a blank line. The schema is kept as
JSON text (TOML has no null, and a schema is JSON to begin with).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.config import format_value, write_atomic
from llmcli.errors import DataError, LlmcliError, UsageError
from llmcli.knobs import KNOBS
from llmcli.paths import config_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KNOB_KINDS = {
    "float": "float",
    "int": "int",
    "optional_int": "int",
    "limit": "int",
    "bool": "bool",
}
SAMPLING_KINDS: dict[str, str] = {
    **{knob.name: _KNOB_KINDS[knob.kind] for knob in KNOBS.values()},
    "stop": "list",
}
"""The sampling settings a saved prompt may fix (flags given with ``ask -p`` still win)."""
TEXT_KEYS = ("description", "system", "prompt", "model")
_PLACEHOLDER = re.compile(r"\{input\}|\$\$|\$([1-9])")


class PromptNotFound(LlmcliError):
    """No saved prompt has this name (exit 1)."""


@dataclass
class SavedPrompt:
    name: str
    prompt: str | None = None
    system: str | None = None
    model: str | None = None
    description: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None

    def to_toml(self) -> str:
        lines = [
            "# A saved llmcli prompt: 'llmcli ask -p NAME [WORDS]'. In 'prompt', {input} is",
            "# the input (stdin, then the words) and $1..$9 single words.",
        ]
        for key in TEXT_KEYS:
            value = getattr(self, key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
        if self.schema is not None:
            lines.append(f"schema = {_toml_string(json.dumps(self.schema, indent=2))}")
        if self.sampling:
            lines += ["", "[sampling]"]
            lines += [f"{k} = {format_value(v)}" for k, v in self.sampling.items()]
        return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A multi-line literal string where that reads better and is exact, else a basic one."""
    if "\n" in value and "'''" not in value and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value):
        return "'''\n" + value + "'''"
    return format_value(value)


def prompts_dir() -> Path:
    return config_dir() / "prompts"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid prompt name {name!r}",
            hint="use letters, digits, '.', '_' or '-' (at most 64, starting with a letter "
            "or digit)",
        )
    return name


def prompt_path(name: str) -> Path:
    return prompts_dir() / f"{check_name(name)}.toml"


def list_prompts() -> list[str]:
    """Saved prompt names, sorted (files that are not valid names are ignored)."""
    try:
        files = list(prompts_dir().glob("*.toml"))
    except OSError:
        return []
    return sorted(f.stem for f in files if NAME_RE.fullmatch(f.stem))


def save_prompt(prompt: SavedPrompt) -> Path:
    path = prompt_path(prompt.name)
    write_atomic(path, prompt.to_toml())
    return path


def remove_prompt(name: str) -> Path:
    path = prompt_path(name)
    try:
        path.unlink()
    except FileNotFoundError:
        raise _not_found(name) from None
    except OSError as exc:
        raise DataError(f"cannot remove {path}: {exc.strerror or exc}") from None
    return path


def load_prompt(name: str) -> SavedPrompt:
    path = prompt_path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _not_found(name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read saved prompt {path}: {exc}") from None
    return parse_prompt(name, text, path)


def parse_prompt(name: str, text: str, path: Path) -> SavedPrompt:
    """A saved prompt from its TOML text; a data error naming the file and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(path, f"not valid TOML: {exc}") from None
    result = SavedPrompt(name=name)
    for key, value in data.items():
        if key in TEXT_KEYS:
            if not isinstance(value, str):
                raise _bad(path, f"{key} must be a string")
            setattr(result, key, value)
        elif key == "schema":
            result.schema = _schema_value(value, path)
        elif key == "sampling":
            result.sampling = _sampling_value(value, path)
        else:
            allowed = ", ".join((*TEXT_KEYS, "schema", "sampling"))
            raise _bad(path, f"unknown key {key!r} (allowed: {allowed})")
    return result


def _schema_value(value: Any, path: Path) -> dict[str, Any]:
    from llmcli.structured import check_schema

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _bad(path, f"schema is not valid JSON: {exc.msg}") from None
    try:
        check_schema(value)
    except UsageError as exc:
        raise _bad(path, f"schema: {exc.message}") from None
    return value


def _sampling_value(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "sampling must be a table")
    result: dict[str, Any] = {}
    for key, item in value.items():
        kind = SAMPLING_KINDS.get(key)
        if kind is None:
            raise _bad(path, f"unknown sampling key {key!r} (allowed: {', '.join(SAMPLING_KINDS)})")
        if not _is_kind(item, kind):
            raise _bad(path, f"sampling.{key} must be {_KIND_NAMES[kind]}")
        result[key] = float(item) if kind == "float" else item
    return result


_KIND_NAMES = {
    "float": "a number",
    "int": "a whole number",
    "bool": "true or false",
    "list": "a list of strings",
}


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _bad(path: Path, problem: str) -> DataError:
    return DataError(
        f"saved prompt {path}: {problem}",
        hint=f"fix it with 'llmcli prompts edit {path.stem}'",
    )


def _not_found(name: str) -> PromptNotFound:
    names = list_prompts()
    known = f"saved: {', '.join(names)}" if names else "none saved yet"
    return PromptNotFound(
        f"no saved prompt named {name!r} ({known})",
        hint="save one with 'llmcli prompts save NAME --prompt TEXT'",
    )


def fill_template(template: str, input_text: str, words: list[str]) -> str:
    """The prompt with ``{input}`` and ``$N`` filled (the input appended if neither occurs).

    A ``$N`` with no N-th word is a usage error: a script that forgot an argument
    should fail, not send a prompt with a hole in it.
    """
    used = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used
        token = match.group(0)
        if token == "$$":
            return "$"
        used = True
        if token == "{input}":
            return input_text
        index = int(match.group(1))
        if index > len(words):
            raise UsageError(
                f"the saved prompt uses ${index} but {len(words)} word(s) were given",
                hint="pass the missing words after the prompt",
            )
        return words[index - 1]

    filled = _PLACEHOLDER.sub(replace, template)
    if not used and input_text:
        return f"{filled.rstrip()}\n\n{input_text}" if filled.strip() else input_text
    return filled
