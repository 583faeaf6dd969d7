"""Shared by every command that runs a model: settings → model file → loaded engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmcli.config import Settings
from llmcli.context import Environment
from llmcli.engine.base import Engine, LoadOptions, LoraSpec, Sampling
from llmcli.engine.hardware import parse_gpu_layers
from llmcli.engine.template import BUILTIN_FORMATS
from llmcli.errors import DataError, UsageError
from llmcli.store.resolve import ResolvedModel, resolve_model


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


@dataclass
class SamplingFlags:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    greedy: bool = False
    logprobs: int = 0


def _pick(flag: object, default: object) -> object:
    return default if flag is None else flag


def build_sampling(flags: SamplingFlags, settings: Settings) -> Sampling:
    """Flags over settings; ``--greedy`` means temperature 0 (argmax)."""
    return Sampling(
        temperature=float(_pick(flags.temperature, settings.temperature)),  # type: ignore[arg-type]
        top_p=float(_pick(flags.top_p, settings.top_p)),  # type: ignore[arg-type]
        top_k=int(_pick(flags.top_k, settings.top_k)),  # type: ignore[call-overload]
        min_p=float(_pick(flags.min_p, settings.min_p)),  # type: ignore[arg-type]
        repeat_penalty=float(_pick(flags.repeat_penalty, settings.repeat_penalty)),  # type: ignore[arg-type]
        seed=flags.seed,
        max_tokens=flags.max_tokens if flags.max_tokens is not None else settings.max_tokens,
        stop=tuple(flags.stop or ()),
        greedy=flags.greedy,
        logprobs=flags.logprobs,
    )


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
        try:
            return flags.chat_template.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"cannot read chat template {flags.chat_template}: {exc}",
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


def resolve(flags: ModelFlags, settings: Settings, env: Environment) -> ResolvedModel:
    ref = flags.model or settings.model
    return resolve_model(ref, env.environ)


def load_engine(
    flags: ModelFlags, settings: Settings, env: Environment
) -> tuple[Engine, ResolvedModel]:
    """Resolve, check the GGUF header (before llama.cpp sees the file), then load."""
    from llmcli.engine.loader import load_local
    from llmcli.store.gguf import check_model_file

    options = load_options(flags, settings)
    model = resolve(flags, settings, env)
    header = check_model_file(model.path)
    engine = load_local(model.path, options, trained_ctx=header.context_length)
    return engine, model
