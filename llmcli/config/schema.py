"""The settings and their schema: keys, types, bounds, and checking one value.

The sampling knobs come from :data:`llmcli.knobs.KNOBS`; the other keys (model,
context, hardware, system prompt, theme, keep-alive) are declared here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcli.errors import DataError
from llmcli.knobs import KNOBS, Knob

CONFIG_ENV = "LLMCLI_CONFIG"
ENV_PREFIX = "LLMCLI_"
MODELS_TABLE = "models"
REMOTES_TABLE = "remotes"

DEFAULT = "default"
FILE = "file"
DEFAULT_KEEP_ALIVE = "5m"
"""ollama's default: see README, "Warm models" for why llmcli keeps it."""
FIX_HINT = "edit it with 'llmcli config edit', or move it away"


def _knob_defaults() -> dict[str, Any]:
    return {k.name: k.default for k in KNOBS.values() if k.config}


@dataclass
class Settings:
    """Values in force for one command; ``sources`` says where each came from."""

    model: str | None = None
    ctx: int | None = None
    gpu_layers: str = "auto"
    threads: int | None = None
    system: str | None = None
    theme: str | None = None
    keep_alive: str = DEFAULT_KEEP_ALIVE
    """How long the engine server keeps models loaded after the last call ("0": no server)."""
    save_ask: bool = False
    """Save every ``ask`` (question and answer) in history as a conversation of its own."""
    knobs: dict[str, Any] = field(default_factory=_knob_defaults)
    """The sampling knobs the config file may set (``settings.temperature`` reads them)."""
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    """``{key: "default" | "file" | "file [models.NAME]" | "env LLMCLI_X"}``."""
    model_tables: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    """The file's validated ``[models.NAME]`` tables, for :func:`settings_for_model`."""
    config_path: Path | None = field(default=None, compare=False)
    model_table: str | None = field(default=None, compare=False)
    """The ``[models.NAME]`` table applied by :func:`settings_for_model`, if any."""

    def source(self, key: str) -> str:
        return self.sources.get(key, DEFAULT)

    def knob(self, name: str) -> Any:
        return self.knobs[name]

    def __getattr__(self, name: str) -> Any:
        knobs = self.__dict__.get("knobs")
        if knobs is not None and name in knobs:
            return knobs[name]
        raise AttributeError(f"{type(self).__name__!r} has no setting {name!r}")

    def set(self, name: str, value: Any) -> None:
        """Set one key, a knob or a plain field."""
        if name in self.knobs:
            self.knobs[name] = value
        else:
            setattr(self, name, value)


# ---- the schema ------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One setting: its type, bounds, and whether a ``[models.NAME]`` table may set it."""

    name: str
    kind: str  # "str", "int", "float", "bool", "duration", "gpu_layers", "theme"
    help: str
    minimum: float | None = None
    maximum: float | None = None
    per_model: bool = True
    example: Any = None
    """Shown in the new-file template where the default is "unset"."""
    unset: str = ""
    """What happens when the value is unset (``None``)."""

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _knob_key(knob: Knob) -> Key:
    """A sampling knob as a config key (declared in :data:`llmcli.knobs.KNOBS`)."""
    return Key(
        knob.name,
        "float" if knob.kind == "float" else "int",
        knob.config_help,
        knob.minimum,
        knob.maximum,
        example=knob.example,
        unset=knob.unset,
    )


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("model", "str", "default model: a .gguf path, OWNER/REPO[:QUANT], an alias",
            per_model=False, example="bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M",
            unset="the bundled SmolLM2"),
        *(_knob_key(knob) for knob in KNOBS.values() if knob.config),
        Key("ctx", "int", "context window in tokens", 1, 1 << 30, example=4096,
            unset="the model's trained context, at most 4096"),
        Key("gpu_layers", "gpu_layers", "layers to offload: N, all or auto"),
        Key("threads", "int", "CPU threads", 1, example=4, unset="physical cores"),
        Key("system", "str", "system prompt", example="You are a concise assistant.",
            unset="none"),
        Key("theme", "theme", "colour theme of code blocks (a Pygments style)",
            per_model=False, example="monokai", unset="monokai"),
        Key("keep_alive", "duration", "keep models loaded in the engine server this long "
            "after the last call (5m, 30s, 1h; 0 = off, run in-process)", per_model=False),
        Key("save_ask", "bool", "save each 'ask' (question and answer) in history, like 'ask -c' "
            "does; off: only chats and 'ask -c' are saved", per_model=False),
    )
}  # fmt: skip

_TYPE_NAMES = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "duration": "a duration (30s, 5m, 1h, 0)",
    "gpu_layers": "a number of layers, 'all' or 'auto'",
    "theme": "a Pygments style name",
}


class ConfigError(DataError):
    """The config file cannot be used; the message names the file, line and column."""

    def __init__(
        self, path: Path, problem: str, line: int | None = None, column: int | None = None
    ) -> None:
        where = f", line {line}" if line else ""
        where += f", column {column}" if line and column else ""
        super().__init__(f"config file {path}{where}: {problem}", hint=FIX_HINT)
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem


# ---- validating values -----------------------------------------------------------------


def check_value(key: Key, value: Any) -> Any:
    """The value normalized to the key's type; ``ValueError`` says what was expected."""
    if key.kind == "gpu_layers":
        return _gpu_layers(value)
    if key.kind == "duration":
        return _duration(key.name, value)
    if key.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key.name} must be true or false, not {_kind_of(value)}")
        return value
    if key.kind in ("str", "theme"):
        if not isinstance(value, str):
            raise ValueError(f"{key.name} must be {_TYPE_NAMES[key.kind]}, not {_kind_of(value)}")
        return _theme(value) if key.kind == "theme" else value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key.name} must be {_TYPE_NAMES[key.kind]}, not {_kind_of(value)}")
    if key.kind == "int":
        if isinstance(value, float):
            raise ValueError(f"{key.name} must be a whole number, not {value!r}")
        number: float = value
    else:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{key.name} must be a finite number, not {value!r}")
    if key.minimum is not None and number < key.minimum:
        raise ValueError(f"{key.name} must be at least {_num(key.minimum)}, not {_num(number)}")
    if key.maximum is not None and number > key.maximum:
        raise ValueError(f"{key.name} must be at most {_num(key.maximum)}, not {_num(number)}")
    return number


def parse_text(key: Key, text: str) -> Any:
    """A value typed as text (an environment variable, ``config set``), checked."""
    value: Any = text
    if key.kind == "bool":
        word = text.strip().lower()
        if word not in _BOOL_WORDS:
            raise ValueError(f"{key.name} must be true or false, not {text!r}")
        value = _BOOL_WORDS[word]
    elif key.kind == "int":
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{key.name} must be a whole number, not {text!r}") from None
    elif key.kind == "float":
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{key.name} must be a number, not {text!r}") from None
    return check_value(key, value)


_BOOL_WORDS = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off"), False),
}


def _gpu_layers(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("all", "auto") or (lowered.isascii() and lowered.isdigit()):
            return lowered
    raise ValueError(f"gpu_layers must be a number of layers, 'all' or 'auto', not {value!r}")


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``5m``, ``30s``, ``1h30m``, ``250ms`` or a bare number of seconds."""
    spec = text.strip().lower().replace(" ", "")
    if spec in ("-1", "forever", "inf"):
        return math.inf
    total, pos = 0.0, 0
    while pos < len(spec):
        match = _DURATION_RE.match(spec, pos)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h, or 0)")
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if not spec:
        raise ValueError("empty duration (use e.g. 30s, 5m, 1h, or 0)")
    return total


def _duration(name: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{value:g}s" if value >= 0 else "-1"
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a duration such as 5m, not {_kind_of(value)}")
    try:
        parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return value.strip()


def _theme(name: str) -> str:
    from pygments.styles import get_all_styles

    styles = sorted(get_all_styles())
    if name not in styles:
        import difflib

        close = difflib.get_close_matches(name, styles, n=1)
        tip = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"theme {name!r} is not a Pygments style{tip}")
    return name


def _kind_of(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    for kind, name in names.items():
        if type(value) is kind:
            return f"{name} ({value!r})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _num(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def unknown_key_message(name: str, allowed: list[str]) -> str:
    import difflib  # only for a "did you mean" on an unknown key

    close = difflib.get_close_matches(name, allowed, n=1)
    tip = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {name!r}{tip}"


# ---- reading the file ------------------------------------------------------------------


def describe_value(key: Key, value: Any) -> str:
    """How ``config show`` prints a value; unset ones say what happens instead."""
    if value is None:
        return f"({key.unset})" if key.unset else "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
