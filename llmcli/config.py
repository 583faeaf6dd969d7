"""Effective settings: built-in defaults < config file < environment (< command-line flags).

The config file is TOML at :func:`llmcli.paths.config_file` (``LLMCLI_CONFIG`` names
another one). Top-level keys are the defaults; ``[models.NAME]`` tables override
sampling and hardware settings for one model, NAME being what the user passes to
``-m`` (an alias, ``OWNER/REPO``, ``OWNER/REPO:QUANT``, or a file name)::

    model = "qwen"
    temperature = 0.7

    [models.qwen]
    system = "Answer in one sentence."
    temperature = 0.2

Precedence, highest first: a command-line flag (applied by the CLI, which treats an
unset flag as ``None``), an ``LLMCLI_*`` environment variable, the file's
``[models.NAME]`` table, the file's top level, the built-in default. Every value
remembers where it came from (``Settings.sources``) so ``llmcli config show`` can
say why a value is what it is.

A file that is not valid TOML, or holds an unknown key or a value of the wrong
type, raises :class:`ConfigError` (a :class:`~llmcli.errors.DataError`, exit 65)
naming the line and column; only commands that need settings read the file, so
``--help``, ``config path``, ``config edit`` and ``models list`` keep working.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from llmcli import paths
from llmcli.errors import DataError, StorageError, UsageError
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
    kind: str  # "str", "int", "float", "gpu_layers", "theme"
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
    )
}  # fmt: skip

_TYPE_NAMES = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
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
    if key.kind == "int":
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


@dataclass(frozen=True)
class ConfigFile:
    """A parsed, validated config file (empty when it does not exist)."""

    path: Path
    exists: bool
    values: dict[str, Any]
    models: dict[str, dict[str, Any]]
    text: str = ""
    remotes: dict[str, Any] = field(default_factory=dict)
    """The raw ``[remotes.NAME]`` tables; ``llmcli.cli.remote`` checks them."""


def remote_tables(config: ConfigFile) -> dict[str, Any]:
    """The ``[remotes.NAME]`` tables (servers to run on), unchecked: their owner checks them."""
    return config.remotes


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``LLMCLI_CONFIG`` if set, else ``config.toml`` in the platform config dir."""
    environ = os.environ if environ is None else environ
    override = environ.get(CONFIG_ENV)
    return Path(override).expanduser() if override else paths.config_file()


MAX_CONFIG_BYTES = 1 << 20


def read_config(path: Path) -> ConfigFile:
    """Parse and validate ``path``; a missing file is an empty config."""
    from llmcli.bounded import FileTooLarge, NotRegularFile, read_bounded

    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES)  # a FIFO or /dev/zero must not hang us
        text = raw.decode("utf-8")
    except FileNotFoundError:
        return ConfigFile(path, False, {}, {})
    except IsADirectoryError:
        raise ConfigError(path, "is a directory, not a file") from None
    except (NotRegularFile, FileTooLarge) as exc:
        raise ConfigError(path, str(exc.strerror)) from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        bad_line = text_line_of_offset(raw, exc.start)
        raise ConfigError(path, "is not UTF-8 text", bad_line) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem, line, column = split_toml_error(exc, text)
        raise ConfigError(path, f"not valid TOML: {problem}", line, column) from exc
    values, models = validate(data, text, path)
    remotes = data.get(REMOTES_TABLE, {})
    if not isinstance(remotes, dict):
        line = find_key_line(text, (), REMOTES_TABLE)
        raise ConfigError(path, f"'remotes' must be a table, not {_kind_of(remotes)}", line)
    return ConfigFile(path, True, values, models, text, remotes)


def split_toml_error(exc: Exception, text: str) -> tuple[str, int | None, int | None]:
    """tomllib's message ends "(at line L, column C)" or "(at end of document)"."""
    message = str(exc)
    line: int | None = None
    column: int | None = None
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    end = re.search(r"\s*\(at end of document\)\s*$", message)
    problem = message
    if match:
        problem = message[: match.start()]
        line, column = int(match.group(1)), int(match.group(2))
    elif end:
        problem = message[: end.start()] + " (the file ends too early)"
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    return problem[:1].lower() + problem[1:], line, column


def text_line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def validate(
    data: dict[str, Any], text: str, path: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Check every key and value; errors point at the line that holds the key."""
    values: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if name == MODELS_TABLE:
            models = _validate_models(value, text, path)
            continue
        if name == REMOTES_TABLE:
            continue  # [remotes.NAME] servers: llmcli.cli.remote checks them when one is used
        values[name] = _validated(name, value, KEYS, text, path, table=())
    return values, models


def _validate_models(value: Any, text: str, path: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ConfigError(
            path,
            f"'models' must be a table of [models.NAME] tables, not {_kind_of(value)}",
            find_key_line(text, (), MODELS_TABLE),
        )
    allowed = {k: v for k, v in KEYS.items() if v.per_model}
    models: dict[str, dict[str, Any]] = {}
    for model, table in value.items():
        if not isinstance(table, dict):
            raise ConfigError(
                path,
                f"models.{model} must be a table of settings, not {_kind_of(table)}",
                find_key_line(text, (MODELS_TABLE,), model),
            )
        models[model] = {
            name: _validated(name, v, allowed, text, path, table=(MODELS_TABLE, model))
            for name, v in table.items()
        }
    return models


def _validated(
    name: str, value: Any, allowed: Mapping[str, Key], text: str, path: Path, table: tuple[str, ...]
) -> Any:
    line = find_key_line(text, table, name)
    if name not in allowed:
        where = f" in [models.{table[1]}]" if table else ""
        problem = unknown_key_message(name, sorted(allowed)) + where
        if table and name in KEYS:
            problem = f"{name!r} cannot be set per model (only at the top level)"
        raise ConfigError(path, problem, line)
    try:
        return check_value(allowed[name], value)
    except ValueError as exc:
        raise ConfigError(path, str(exc), line) from None


_HEADER_RE = re.compile(r"^\s*\[(?!\[)[^\]]*(?:\][^\]]*)*\]\s*(?:#.*)?$")


def find_key_line(text: str, table: tuple[str, ...], key: str) -> int | None:
    """The 1-based line where ``key`` is defined in ``table`` (best effort, for messages)."""
    for index, current, line in _walk_lines(text):
        if current == table and line_key(line) == key:
            return index + 1
        if current == (*table, key) and current != table and _HEADER_RE.match(line):
            return index + 1
    return None


def _walk_lines(text: str) -> list[tuple[int, tuple[str, ...] | None, str]]:
    """Each line with the table it sits in (``None`` where that cannot be told)."""
    result: list[tuple[int, tuple[str, ...] | None, str]] = []
    current: tuple[str, ...] | None = ()
    for index, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("["):
            current = header_path(line)
        result.append((index, current, line))
    return result


def header_path(line: str) -> tuple[str, ...] | None:
    """``[models."a.b"]`` → ``("models", "a.b")``; ``None`` for arrays of tables or junk."""
    if not _HEADER_RE.match(line):
        return None
    try:
        data: Any = tomllib.loads(line.strip())
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        name, data = next(iter(data.items()))
        path.append(name)
    return tuple(path) if path and data == {} else None


def line_key(line: str) -> str | None:
    """The key a one-line ``key = value`` assignment sets (``None`` for anything else)."""
    if "=" not in line or line.lstrip().startswith(("#", "[")):
        return None
    try:
        data = tomllib.loads(line)
    except tomllib.TOMLDecodeError:
        return None
    if len(data) == 1:
        name, value = next(iter(data.items()))
        if not isinstance(value, dict):
            return name
    return None


# ---- layering --------------------------------------------------------------------------


def load_settings(
    environ: Mapping[str, str], *, path: Path | None = None, use_file: bool = True
) -> Settings:
    """Defaults, then the config file, then ``LLMCLI_*`` variables (flags come later).

    Raises :class:`ConfigError` (exit 65) for a damaged file and
    :class:`~llmcli.errors.UsageError` (exit 2) for a bad environment value.
    """
    path = path or config_path(environ)
    config = read_config(path) if use_file else ConfigFile(path, False, {}, {})
    settings = Settings(config_path=path, model_tables=config.models)
    settings.sources = {name: DEFAULT for name in KEYS}
    for name, value in config.values.items():
        _assign(settings, name, value, FILE)
    for key in KEYS.values():
        text = environ.get(key.env_var)
        if not text:
            continue
        try:
            value = parse_text(key, text)
        except ValueError as exc:
            raise UsageError(
                f"environment variable {key.env_var}: {exc}",
                hint=f"unset {key.env_var} or give it {_TYPE_NAMES[key.kind]}",
            ) from None
        _assign(settings, key.name, value, f"env {key.env_var}")
    return settings


def _assign(settings: Settings, name: str, value: Any, source: str) -> None:
    settings.set(name, value)
    settings.sources[name] = source


def settings_for_model(settings: Settings, *refs: str | None) -> Settings:
    """``settings`` with the ``[models.NAME]`` table of the first ref that has one applied.

    Pass what the user typed (``flags.model or settings.model``) and, if known, the
    resolved model's name. Environment variables still win over the table; flags are
    applied later by the CLI and win over everything.
    """
    name = find_model_table(settings.model_tables, refs)
    if name is None:
        return settings
    result = replace(
        settings, knobs=dict(settings.knobs), sources=dict(settings.sources), model_table=name
    )
    for key, value in settings.model_tables[name].items():
        if not result.source(key).startswith("env"):
            _assign(result, key, value, f"{FILE} [models.{name}]")
    return result


def find_model_table(tables: Mapping[str, Any], refs: tuple[str | None, ...]) -> str | None:
    """The table name for the first matching ref: exact, then ignoring case, then looser.

    ``OWNER/REPO:Q4_K_M@main`` also matches ``OWNER/REPO:Q4_K_M`` and ``OWNER/REPO``;
    a path also matches its file name with and without ``.gguf``.
    """
    folded = {name.casefold(): name for name in tables}
    for ref in refs:
        if not ref:
            continue
        for candidate in model_key_candidates(ref):
            if candidate in tables:
                return candidate
            if candidate.casefold() in folded:
                return folded[candidate.casefold()]
    return None


def model_key_candidates(ref: str) -> list[str]:
    candidates = [ref]
    base = ref.rsplit("@", 1)[0] if "@" in ref and "/" in ref else ref
    candidates.append(base)
    if ":" in base.rsplit("/", 1)[-1]:
        candidates.append(base.rsplit(":", 1)[0])
    if ref.lower().endswith(".gguf"):
        file_name = Path(ref).name
        candidates += [file_name, file_name[: -len(".gguf")]]
    return list(dict.fromkeys(candidates))


# ---- writing the file ------------------------------------------------------------------


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


def write_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write to a temp file beside ``path``, fsync, rename: never a half-written config."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_error(path, exc) from exc


def _write_error(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot write {path}: {exc.strerror or exc}", hint="check disk space and permissions"
    )


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


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


def describe_value(key: Key, value: Any) -> str:
    """How ``config show`` prints a value; unset ones say what happens instead."""
    if value is None:
        return f"({key.unset})" if key.unset else "-"
    return str(value)
