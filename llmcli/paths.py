"""Where llmcli keeps things: platformdirs locations, one override (``LLMCLI_HOME``).

With ``LLMCLI_HOME`` set, every path lives under it (``config/``, ``data/``,
``state/``, ``cache/``), which is what tests and portable installs want.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "llmcli"
HOME_ENV = "LLMCLI_HOME"


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def user_path(text: str) -> Path:
    """A path the user typed, ``~`` expanded; ``~name`` for no such user stays literal
    (``Path.expanduser`` raises RuntimeError for it)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def is_file(path: Path) -> bool:
    """``path.is_file()``, but False where the OS refuses the name (too long, ...)."""
    try:
        return path.is_file()
    except OSError:
        return False


def exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def config_dir() -> Path:
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME))


def state_dir() -> Path:
    home = _home()
    return home / "state" if home else Path(platformdirs.user_state_dir(APP_NAME))


def cache_dir() -> Path:
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME))


def runtime_dir() -> Path:
    """Where the engine server's socket and lock live (``$XDG_RUNTIME_DIR/llmcli``).

    platformdirs warns when ``XDG_RUNTIME_DIR`` is unset and falls back to
    ``/tmp/runtime-UID``; the warning is noise for a CLI, the fallback is fine (the
    folder is created 0700 and checked before use).
    """
    home = _home()
    if home:
        return home / "run"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_NAME))


def kv_state_dir() -> Path:
    """Saved KV states of conversations (the engine server's prefill cache)."""
    return cache_dir() / "kv-states"


def models_dir() -> Path:
    """The model store: one folder per pulled model, each with a manifest."""
    return data_dir() / "models"


def config_file() -> Path:
    return config_dir() / "config.toml"


def history_file() -> Path:
    """prompt_toolkit input history shared by every chat session."""
    return state_dir() / "input-history"


def transcripts_dir() -> Path:
    """Where the chat's ``/save`` writes when it is given no file name."""
    return data_dir() / "transcripts"


def conversations_db() -> Path:
    return data_dir() / "conversations.sqlite3"
