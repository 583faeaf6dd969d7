"""Choosing and loading the engine a command runs on: local, remote, or a named remote.

Settings and flags in, a loaded :class:`~llmcli.engine.base.Engine` out. The one
interactive step (offering to pull a Hub model that is not stored yet) is a
callback, so this module never talks to a terminal; ``llmcli.cli.loading`` passes
the CLI's prompt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llmcli import paths
from llmcli.config import Settings
from llmcli.context import Environment
from llmcli.engine.base import Embeddings, Engine, LoadOptions, LoraSpec, TokenLevel
from llmcli.engine.hardware import parse_gpu_layers
from llmcli.engine.template import BUILTIN_FORMATS
from llmcli.errors import DataError, ModelNotFound, UsageError

if TYPE_CHECKING:
    from llmcli.store.resolve import ModelNotPulled, ResolvedModel


@dataclass
class ModelFlags:
    """The model/hardware flags as typed; ``None`` means "not given"."""

    model: str | None = None
    ctx: int | None = None
    gpu_layers: str | None = None
    threads: int | None = None
    chat_template: Path | None = None
    chat_format: str | None = None
    verbose: bool = False
    loras: list[LoraSpec] = field(default_factory=list)
    engine: str | None = None
    """``local`` or ``openai`` (an OpenAI-compatible server); see llmcli.service.remotes."""
    base_url: str | None = None
    keep_alive: str | None = None
    """``--keep-alive``: how long the engine server keeps the model (``0``: in-process)."""


MAX_TEMPLATE_FILE_BYTES = 4 << 20


def chat_template_source(flags: ModelFlags) -> str | None:
    """The template override from ``--chat-template FILE`` or ``--chat-format NAME``."""
    if flags.chat_template and flags.chat_format:
        raise UsageError(
            "--chat-template and --chat-format both given", hint="pass only one of them"
        )
    if flags.chat_format:
        try:
            return BUILTIN_FORMATS[flags.chat_format.lower()]
        except KeyError:
            names = ", ".join(sorted(BUILTIN_FORMATS))
            raise UsageError(
                f"unknown chat format {flags.chat_format!r}", hint=f"choose one of: {names}"
            ) from None
    if flags.chat_template:
        from llmcli.bounded import read_bounded

        try:  # bounded: a FIFO or /dev/zero named here must not hang or fill memory
            return read_bounded(flags.chat_template, MAX_TEMPLATE_FILE_BYTES).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise DataError(
                f"cannot read chat template {flags.chat_template}: {problem}",
                hint="pass a readable UTF-8 Jinja2 file",
            ) from exc
    return None


def load_options(flags: ModelFlags, settings: Settings) -> LoadOptions:
    gpu = flags.gpu_layers if flags.gpu_layers is not None else settings.gpu_layers
    return LoadOptions(
        n_ctx=flags.ctx if flags.ctx is not None else settings.ctx,
        gpu_layers=parse_gpu_layers(gpu),
        threads=flags.threads if flags.threads is not None else settings.threads,
        loras=tuple(flags.loras),
        chat_template=chat_template_source(flags),
        verbose=flags.verbose,
    )


def parse_lora(value: str) -> LoraSpec:
    """``PATH[:SCALE]``: the text after the last colon is a scale only if it is a number.

    So ``a.gguf:0.5`` has scale 0.5, while ``OWNER/REPO:Q8_0`` and ``C:\\x.gguf`` are refs.
    """
    ref, sep, tail = value.rpartition(":")
    try:
        scale = float(tail) if sep else 1.0
    except ValueError:
        ref, scale = value, 1.0
    if not sep:
        ref = value
    if not math.isfinite(scale):
        raise UsageError(f"--lora {value}: the scale must be a finite number", hint="e.g. 0.5")
    if not ref.strip():
        raise UsageError("--lora needs a path", hint="--lora ADAPTER.gguf[:SCALE]")
    return LoraSpec(path=Path(ref), scale=scale)


def parse_loras(values: list[str] | None) -> list[LoraSpec]:
    return [parse_lora(value) for value in values or ()]


def resolve_loras(loras: list[LoraSpec], env: Environment) -> list[LoraSpec]:
    """An existing file is used as is; anything else is looked up like a model (the store)."""
    resolved = []
    for spec in loras:
        path = paths.user_path(str(spec.path))
        if not paths.is_file(path):
            path = _adapter_from_store(str(spec.path), env)
        resolved.append(replace(spec, path=path))
    return resolved


def _adapter_from_store(ref: str, env: Environment) -> Path:
    from llmcli.store.resolve import ModelNotPulled, resolve_model

    try:
        return resolve_model(ref, env.environ).path
    except ModelNotPulled as missing:
        raise ModelNotFound(
            f"LoRA adapter {ref} is not in the local store", hint=f"run: {missing.command}"
        ) from None
    except ModelNotFound:
        raise ModelNotFound(
            f"LoRA adapter {ref} does not exist", hint="pass the path of an adapter .gguf file"
        ) from None


PullOffer = Callable[["ModelNotPulled"], bool]
"""Asked when a Hub model is not stored: pull it now (True, after pulling) or not."""


def resolve(
    flags: ModelFlags, settings: Settings, env: Environment, offer_pull: PullOffer | None = None
) -> ResolvedModel:
    """Resolve the model; ``offer_pull`` may fetch a Hub model that is not stored yet.

    The store is imported here, not at start-up: ``llmcli --help`` stays light.
    """
    from llmcli.store.resolve import ModelNotPulled, resolve_model

    ref = flags.model or settings.model
    try:
        return resolve_model(ref, env.environ)
    except ModelNotPulled as missing:
        if offer_pull is None or not offer_pull(missing):
            raise
        return resolve_model(ref, env.environ)


def load_engine(
    flags: ModelFlags,
    settings: Settings,
    env: Environment,
    offer_pull: PullOffer | None = None,
) -> tuple[Engine, ResolvedModel]:
    """Resolve, check the GGUF header (before llama.cpp sees the file), then load.

    A remote server (``--engine openai``, ``--base-url``, ``-m REMOTE/MODEL``) is
    connected to instead; its :class:`ResolvedModel` has an empty path.
    """
    from llmcli.engine.loader import load_local
    from llmcli.service.remotes import choose_remote, load_remote
    from llmcli.store.adapters import check_adapters
    from llmcli.store.gguf import check_model_file

    if env.engine_loader is not None:
        loaded: tuple[Engine, ResolvedModel] = env.engine_loader(flags, settings)
        return loaded
    remote = choose_remote(flags, settings, env)
    if remote is not None:
        return load_remote(remote, flags, env)
    options = load_options(flags, settings)
    model = resolve(flags, settings, env, offer_pull)
    keep_alive = keep_alive_seconds(flags, settings)
    if keep_alive > 0 and not flags.verbose:  # --verbose: llama.cpp's log, in this process
        from llmcli.service.warm import open_warm

        if options.loras:
            options = replace(options, loras=tuple(resolve_loras(list(options.loras), env)))
        # The server checks the GGUF header and adapters itself, once per file version.
        return open_warm(model.path, options, None, keep_alive, env), model
    header = check_model_file(model.path)
    if options.loras:
        loras = resolve_loras(list(options.loras), env)
        check_adapters((spec.path for spec in loras), header)
        options = replace(options, loras=tuple(loras))
    engine = load_local(model.path, options, trained_ctx=header.context_length)
    return engine, model


def keep_alive_seconds(flags: ModelFlags, settings: Settings) -> float:
    """``--keep-alive`` over ``LLMCLI_KEEP_ALIVE`` over the config file; seconds (0: off)."""
    from llmcli.config import parse_duration

    text = flags.keep_alive if flags.keep_alive is not None else settings.keep_alive
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--keep-alive: {exc}", hint="e.g. --keep-alive 5m, or 0") from None


def load_token_level(
    flags: ModelFlags,
    settings: Settings,
    env: Environment,
    offer_pull: PullOffer | None = None,
) -> tuple[Engine, TokenLevel, ResolvedModel]:
    """An engine, its token-level view and the model it runs, or a usage error for an
    engine without token ids."""
    engine, resolved = load_engine(flags, settings, env, offer_pull)
    tokens = engine.token_level()
    if tokens is None:
        engine.close()
        raise UsageError(
            "this command needs a local model (llama.cpp), not a server",
            hint="pass -m PATH.gguf or a pulled model, without --base-url/--engine openai",
        )
    return engine, tokens, resolved


IN_PROCESS = "0"
"""``keep_alive`` for work on the model's native handles in this process (side contexts)."""


def load_embeddings(
    flags: ModelFlags,
    settings: Settings,
    env: Environment,
    offer_pull: PullOffer | None = None,
) -> tuple[Engine, Embeddings, ResolvedModel]:
    """An engine, its embeddings and the model it runs, or a usage error for an engine
    that has none.

    A local model is always loaded in this process, whatever ``keep_alive`` says: its
    embeddings run on a side context of the model's native handles, which the engine
    server does not lend. A server (``--base-url``) answers ``/v1/embeddings``.
    """
    flags = replace(flags, keep_alive=IN_PROCESS)
    engine, resolved = load_engine(flags, settings, env, offer_pull)
    capability = engine.embeddings()
    if capability is None:
        engine.close()
        raise UsageError(
            f"{engine.model_name} gives no embeddings here",
            hint="use a local GGUF model or a server with /v1/embeddings (--base-url)",
        )
    return engine, capability, resolved
