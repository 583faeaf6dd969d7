"""The one way every ``--json`` is written: one object, UTF-8 as is, a newline, flushed.

JSON escapes C0 controls (``ESC`` is written ``\\u001b``) but, with non-ASCII kept
readable, leaves DEL and the C1 controls U+0080–U+009F raw, and a terminal acts on
those (U+009B is an 8-bit CSI). Written to a terminal, they are escaped too
(``\\u009b``): the same JSON value, nothing for the terminal to act on. Written to a
pipe or a file, the text is exactly what :func:`json.dumps` gives.
"""

from __future__ import annotations

import json
import re
from typing import IO, Any

from llmcli.context import isatty

_RAW_CONTROLS = re.compile("[\x7f-\x9f]")


def dumps(
    data: Any, *, indent: int | None = None, ascii: bool = False, terminal: bool = False
) -> str:
    """The JSON text of ``data``: non-ASCII kept readable unless ``ascii`` (text read from
    untrusted model files, where every non-ASCII character is spelled as an escape);
    with ``terminal``, no raw control character either."""
    text = json.dumps(data, ensure_ascii=ascii, indent=indent)
    return terminal_safe(text) if terminal else text


def terminal_safe(text: str) -> str:
    """JSON text with DEL and C1 controls spelled as ``\\uXXXX`` (valid only for JSON: in
    JSON text these characters can stand only inside strings, where the escape means the
    same character)."""
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_json(
    out: IO[str],
    data: Any,
    *,
    indent: int | None = None,
    ascii: bool = False,
    terminal: bool | None = None,
) -> None:
    """One JSON document and a newline, flushed: every ``--json`` goes through here.

    ``terminal`` defaults to whether ``out`` is one."""
    safe = isatty(out) if terminal is None else terminal
    out.write(dumps(data, indent=indent, ascii=ascii, terminal=safe) + "\n")
    out.flush()
