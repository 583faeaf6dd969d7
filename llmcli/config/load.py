"""Reading the config file and layering settings: defaults < file < ``[models.NAME]`` < env."""

from __future__ import annotations

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
from llmcli.config.schema import (
    _TYPE_NAMES,
    CONFIG_ENV,
    DEFAULT,
    FILE,
    KEYS,
    MODELS_TABLE,
    REMOTES_TABLE,
    ConfigError,
    Key,
    Settings,
    _kind_of,
    check_value,
    parse_text,
    unknown_key_message,
)
from llmcli.errors import UsageError


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
