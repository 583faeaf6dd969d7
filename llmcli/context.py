"""The I/O environment a command runs in, injected rather than read from ``sys``.

Following httpie's ``Environment``: commands and renderers take one object that
holds stdin/stdout/stderr and whether each is a terminal, so tests can swap in
buffers and the decision "Rich or plain text" is made in one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (``False`` for anything without a working isatty)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


_isatty = isatty


@dataclass
class Environment:
    stdin: IO[Any] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    engine_loader: Callable[..., Any] | None = None
    """Stands in for loading a model: ``(flags, settings) -> (engine, resolved)``. Tests run
    the real CLI in-process with the fake engine through it; ``None`` loads for real."""

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            self.stdin_isatty = self.stdin is None or _isatty(self.stdin)
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    @property
    def no_color(self) -> bool:
        """https://no-color.org: any non-empty ``NO_COLOR`` disables colour."""
        return bool(self.environ.get("NO_COLOR"))

    @property
    def debug(self) -> bool:
        return self.environ.get("LLMCLI_DEBUG", "") not in ("", "0")
