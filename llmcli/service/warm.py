"""Opening a model in llmcli's engine server (``--keep-alive``), for the engine choice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from llmcli.context import Environment
from llmcli.engine.base import LoadOptions


def describe_duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "forever"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def open_warm(
    path: Path, options: LoadOptions, trained_ctx: int | None, keep_alive: float, env: Environment
) -> Any:
    """The model in the engine server; in a terminal, say so when this call started it."""
    from llmcli.engine.served import open_served

    engine = open_served(path, options, trained_ctx=trained_ctx, keep_alive=keep_alive)
    if engine.started_server and env.stderr_isatty:
        engine.notices.insert(
            0,
            f"started llmcli's engine server: models stay loaded for "
            f"{describe_duration(keep_alive)} after the last call "
            "('llmcli ps' shows them, 'llmcli stop' ends it, --keep-alive 0 turns it off)",
        )
    return engine
