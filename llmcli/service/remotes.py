"""Choosing a server to run on: ``--engine``, ``--base-url``, ``[remotes.NAME]`` and API keys.

A command runs remotely when ``--engine openai`` is given, when a base URL is set
(``--base-url`` or ``LLMCLI_BASE_URL``) and ``--engine local`` is not, or when the
model reference names a configured remote (``-m gpu-box/MODEL``)::

    [remotes.gpu-box]
    base_url = "http://gpu-box:8000/v1"
    model = "Qwen/Qwen2.5-7B-Instruct"   # optional: used when -m names only the remote
    api_key_env = "GPU_BOX_KEY"          # optional: the variable that holds its key
    timeout = 300                        # optional: seconds to wait for each token

The API key is read from the remote's ``api_key_env``, then ``LLMCLI_API_KEY``, then
``OPENAI_API_KEY``; it is never printed. Flags that only make sense for a model
loaded here (``--ctx``, ``--gpu-layers``, ``--threads``, ``--chat-template``,
``--chat-format``, ``--lora``) are refused with a message rather than ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmcli import paths
from llmcli.context import Environment
from llmcli.errors import UsageError

if TYPE_CHECKING:
    from llmcli.config import ConfigFile, Settings
    from llmcli.engine.base import Engine
    from llmcli.engine.openai import OpenAIEngine
    from llmcli.engine.remote_http import RemoteConfig
    from llmcli.service.engines import ModelFlags
    from llmcli.store.resolve import ResolvedModel

ENGINES = ("local", "openai")
BASE_URL_ENV = "LLMCLI_BASE_URL"
API_KEY_ENVS = ("LLMCLI_API_KEY", "OPENAI_API_KEY")
TIMEOUT_ENV = "LLMCLI_TIMEOUT"
_REMOTE_KEYS = {"base_url": "a URL", "model": "text", "api_key_env": "text", "timeout": "seconds"}
_LOCAL_ONLY = (
    ("ctx", "--ctx", "the server sets its context size when it starts (llama-server -c N)"),
    ("gpu_layers", "--gpu-layers", "GPU offload is the server's setting"),
    ("threads", "--threads", "threads are the server's setting"),
    ("chat_template", "--chat-template", "the server applies its own chat template"),
    ("chat_format", "--chat-format", "the server applies its own chat template"),
    ("loras", "--lora", "load adapters in the server (llama-server --lora FILE)"),
)


@dataclass(frozen=True)
class Remote:
    """A server to run on: a ``[remotes.NAME]`` table, or ``--base-url`` (``name`` None)."""

    base_url: str
    name: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout_s: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.base_url


@dataclass(frozen=True)
class RemoteChoice:
    remote: Remote
    model: str | None


# ---- the config file ------------------------------------------------------------------


def load_remotes(environ: dict[str, str]) -> dict[str, Remote]:
    """The ``[remotes.NAME]`` tables of the config file, checked."""
    from llmcli.config import config_path, read_config, remote_tables

    config = read_config(config_path(environ))
    return {
        name: _parse_remote(config, name, table) for name, table in remote_tables(config).items()
    }


def _parse_remote(config: ConfigFile, name: str, table: Any) -> Remote:
    """One table, or a :class:`ConfigError` naming the line of the bad key."""
    from llmcli.config import ConfigError, find_key_line

    def fail(problem: str, key: str | None = None) -> ConfigError:
        where = ("remotes", name) if key else ("remotes",)
        line = find_key_line(config.text, where, key or name)
        return ConfigError(config.path, f"[remotes.{name}]: {problem}", line)

    if not isinstance(table, dict):
        raise fail('must be a table with base_url = "http://host:port/v1"')
    for key, value in table.items():
        if key not in _REMOTE_KEYS:
            raise fail(f"unknown key {key!r} (known: {', '.join(_REMOTE_KEYS)})", key)
        if key == "timeout":
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise fail("timeout must be a number of seconds above 0", key)
        elif not isinstance(value, str) or not value.strip():
            raise fail(f"{key} must be {_REMOTE_KEYS[key]} in quotes", key)
    if "base_url" not in table:
        raise fail('needs base_url = "http://host:port/v1"')
    timeout = table.get("timeout")
    return Remote(
        base_url=table["base_url"],
        name=name,
        model=table.get("model"),
        api_key_env=table.get("api_key_env"),
        timeout_s=float(timeout) if timeout is not None else None,
    )


def find_remote(ref: str | None, remotes: dict[str, Remote]) -> RemoteChoice | None:
    """``NAME/MODEL`` (MODEL may hold more slashes) or a bare ``NAME`` of a configured remote."""
    if not ref or not remotes:
        return None
    name, _, model = ref.partition("/")
    remote = remotes.get(name)
    if remote is None:
        return None
    return RemoteChoice(remote, model or remote.model)


# ---- choosing the engine --------------------------------------------------------------


def choose_remote(
    flags: ModelFlags, settings: Settings | None, env: Environment
) -> RemoteChoice | None:
    """The server to use, or ``None`` to load the model here."""
    engine = (flags.engine or "").lower() or None
    if engine is not None and engine not in ENGINES:
        raise UsageError(f"unknown engine {flags.engine!r}", hint="use --engine local or openai")
    ref = flags.model or (settings.model if settings else None)
    named = _named_remote(ref, env) if ref else None
    if named is not None:
        if engine == "local":
            raise UsageError(
                f"{ref} names the remote server {named.remote.name!r}",
                hint="drop --engine local, or pass a local model with -m",
            )
        if flags.base_url:
            raise UsageError(
                f"--base-url and the remote {named.remote.name!r} both name a server",
                hint="pass only one of them",
            )
        return named
    if engine == "local":
        if flags.base_url:
            raise UsageError("--base-url needs the openai engine", hint="drop --engine local")
        return None
    base_url = flags.base_url or env.environ.get(BASE_URL_ENV) or None
    if base_url is None:
        if engine == "openai":
            raise UsageError(
                "--engine openai needs a server",
                hint=f"pass --base-url URL, set {BASE_URL_ENV}, or use -m REMOTE/MODEL "
                "with a [remotes.REMOTE] table in the config file",
            )
        return None
    return RemoteChoice(Remote(base_url=base_url), ref)


def _named_remote(ref: str, env: Environment) -> RemoteChoice | None:
    if paths.is_file(paths.user_path(ref)):
        return None  # a model file always means a local model
    return find_remote(ref, load_remotes(env.environ))


def refuse_local_only_flags(flags: ModelFlags) -> None:
    for attribute, flag, why in _LOCAL_ONLY:
        if getattr(flags, attribute, None):
            raise UsageError(f"{flag} is not available with a remote engine", hint=why)


# ---- building it ----------------------------------------------------------------------


def remote_config(remote: Remote, environ: dict[str, str]) -> RemoteConfig:
    from llmcli.engine.remote_http import RemoteConfig, normalize_base_url

    key_envs = ((remote.api_key_env,) if remote.api_key_env else ()) + API_KEY_ENVS
    api_key = next((environ[name] for name in key_envs if environ.get(name)), None)
    hint = f"set {' or '.join(key_envs)} to the server's API key"
    return RemoteConfig(
        base_url=normalize_base_url(remote.base_url),
        api_key=api_key,
        api_key_hint=hint,
        read_timeout_s=_timeout(environ, remote),
    )


def _timeout(environ: dict[str, str], remote: Remote) -> float:
    from llmcli.engine.remote_http import DEFAULT_READ_TIMEOUT_S

    text = environ.get(TIMEOUT_ENV)
    if not text:
        return remote.timeout_s or DEFAULT_READ_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(
            f"{TIMEOUT_ENV}={text!r} is not a number of seconds",
            hint=f"e.g. {TIMEOUT_ENV}=300, or unset it",
        )
    return value


def open_remote(choice: RemoteChoice, env: Environment) -> OpenAIEngine:
    """Connect: list the server's models, settle the model name (raises on failure)."""
    from llmcli.engine.openai import OpenAIEngine

    engine = OpenAIEngine(remote_config(choice.remote, env.environ), choice.model)
    try:
        engine.connect()
    except BaseException:
        engine.close()
        raise
    return engine


def load_remote(
    choice: RemoteChoice, flags: ModelFlags, env: Environment
) -> tuple[Engine, ResolvedModel]:
    """The engine for ``load_engine``; the model "path" of a remote is empty (``Path()``)."""
    from llmcli.store.resolve import ResolvedModel

    refuse_local_only_flags(flags)
    engine = open_remote(choice, env)
    return engine, ResolvedModel(path=Path(), name=engine.model_name, source="remote")
