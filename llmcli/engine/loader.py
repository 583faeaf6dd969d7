"""Load an engine for a model file; the llama.cpp binding is imported only here."""

from __future__ import annotations

import os
from pathlib import Path

from llmcli.engine.base import Engine, LoadOptions


def load_local(path: Path, options: LoadOptions, *, trained_ctx: int | None) -> Engine:
    """Load ``path`` with llama.cpp (imports llama_cpp: keep this off start-up paths).

    On a failed ``GGML_ASSERT`` ggml attaches gdb to print a backtrace -- to stdout, where
    it would pollute a pipe with ~16 KB and leave gdb children holding it open -- unless
    ``GGML_NO_BACKTRACE`` is set; it is read at abort time, so setting it here suffices.
    """
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    from llmcli.engine.llama import LlamaEngine
    from llmcli.engine.probe import ensure_loadable

    ensure_loadable(path)
    engine: Engine = LlamaEngine(path, options, trained_ctx=trained_ctx)
    return engine
