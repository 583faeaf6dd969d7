"""The one way every ``--json`` is written: one object, UTF-8 as is, a newline, flushed."""

from __future__ import annotations

import json
from typing import IO, Any


def dumps(data: Any, *, indent: int | None = None, ascii: bool = False) -> str:
    """The JSON text of ``data``: non-ASCII kept readable unless ``ascii`` (text read from
    untrusted model files, where every non-ASCII character is spelled as an escape)."""
    return json.dumps(data, ensure_ascii=ascii, indent=indent)


def write_json(out: IO[str], data: Any, *, indent: int | None = None, ascii: bool = False) -> None:
    """One JSON document and a newline, flushed: every ``--json`` goes through here."""
    out.write(dumps(data, indent=indent, ascii=ascii) + "\n")
    out.flush()
