"""The CLI's side of loading a model: the library's engine selection plus a terminal prompt.

Choosing and loading the engine lives in :mod:`llmcli.service.engines`; the only
thing added here is the offer, in a terminal, to pull a Hub model that is not
stored yet (it needs ``typer.confirm``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmcli.config import Settings
from llmcli.context import Environment
from llmcli.engine.base import Embeddings, Engine, TokenLevel
from llmcli.service import engines
from llmcli.service.engines import (
    ModelFlags,
    chat_template_source,
    keep_alive_seconds,
    load_options,
    parse_lora,
    parse_loras,
    resolve_loras,
)
from llmcli.service.sampling import SamplingFlags, build_sampling

if TYPE_CHECKING:
    from llmcli.store.resolve import ModelNotPulled, ResolvedModel

__all__ = [
    "ModelFlags",
    "SamplingFlags",
    "build_sampling",
    "chat_template_source",
    "keep_alive_seconds",
    "load_embeddings",
    "load_engine",
    "load_options",
    "load_token_level",
    "parse_lora",
    "parse_loras",
    "resolve",
    "resolve_loras",
]


def offer_pull(env: Environment) -> engines.PullOffer | None:
    """In a terminal, ask to pull a missing Hub model (and pull it); elsewhere never."""
    if not (env.stdin_isatty and env.stderr_isatty):
        return None

    def offer(missing: ModelNotPulled) -> bool:
        import typer

        from llmcli.cli.pull import hub_ref_of, run_pull

        prompt = f"{missing.ref} is not in the store. Pull it now?"
        if not typer.confirm(prompt, default=True, err=True):
            return False
        run_pull(hub_ref_of(missing.ref), env, wait_s=300.0)
        return True

    return offer


def resolve(flags: ModelFlags, settings: Settings, env: Environment) -> ResolvedModel:
    return engines.resolve(flags, settings, env, offer_pull(env))


def load_engine(
    flags: ModelFlags, settings: Settings, env: Environment
) -> tuple[Engine, ResolvedModel]:
    return engines.load_engine(flags, settings, env, offer_pull(env))


def load_token_level(
    flags: ModelFlags, settings: Settings, env: Environment
) -> tuple[Engine, TokenLevel, ResolvedModel]:
    return engines.load_token_level(flags, settings, env, offer_pull(env))


def load_embeddings(
    flags: ModelFlags, settings: Settings, env: Environment
) -> tuple[Engine, Embeddings, ResolvedModel]:
    return engines.load_embeddings(flags, settings, env, offer_pull(env))
