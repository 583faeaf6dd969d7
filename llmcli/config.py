"""Effective settings: built-in defaults, overridden by the config file and environment.

Command-line flags are applied on top by the CLI (a flag left unset is ``None``
and falls through to these values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class Settings:
    model: str | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int | None = None
    ctx: int | None = None
    gpu_layers: str = "auto"
    threads: int | None = None
    system: str | None = None


def load_settings(environ: Mapping[str, str]) -> Settings:
    """The settings in force for this process (defaults and environment)."""
    settings = Settings()
    settings.model = environ.get("LLMCLI_MODEL") or None
    if environ.get("LLMCLI_GPU_LAYERS"):
        settings.gpu_layers = environ["LLMCLI_GPU_LAYERS"]
    return settings
