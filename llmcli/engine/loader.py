"""Load an engine for a model file; the llama.cpp binding is imported only here."""

from __future__ import annotations

from pathlib import Path

from llmcli.engine.base import Engine, LoadOptions


def load_local(path: Path, options: LoadOptions, *, trained_ctx: int | None) -> Engine:
    """Load ``path`` with llama.cpp (imports llama_cpp: keep this off start-up paths)."""
    from llmcli.engine.llama import LlamaEngine
    from llmcli.engine.probe import ensure_loadable

    ensure_loadable(path)
    engine: Engine = LlamaEngine(path, options, trained_ctx=trained_ctx)
    return engine
