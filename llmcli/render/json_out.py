"""The one way every ``--json`` is written: one object, UTF-8 as is, a newline, flushed."""

from __future__ import annotations

import json
from typing import IO, Any


def dumps(data: Any, *, indent: int | None = None) -> str:
    """The JSON text of ``data`` (non-ASCII kept readable, as every ``--json`` prints it)."""
    return json.dumps(data, ensure_ascii=False, indent=indent)


def write_json(out: IO[str], data: Any, *, indent: int | None = None) -> None:
    out.write(dumps(data, indent=indent) + "\n")
    out.flush()
