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
from collections.abc import Iterable
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


# ---- the shared vocabulary (docs/json.md) ------------------------------------------------


def model_json(model: str, ref: str | None) -> dict[str, Any]:
    """``model``: the canonical name, however it was named; ``ref``: what the user typed
    (``-m``, ``LLMCLI_MODEL`` or the config file), ``null`` for the default model."""
    return {"model": model, "ref": ref}


def token_json(token_id: int | None, text: str, **more: Any) -> dict[str, Any]:
    """One token: ``id`` (``null`` where a server sends none) and ``text``, then ``more``."""
    known = token_id if token_id is not None and token_id >= 0 else None
    return {"id": known, "text": text, **more}


def logprob_tokens(pieces: Iterable[Any]) -> list[dict[str, Any]]:
    """``tokens`` of an answer with ``--logprobs K``: each with its ``top`` K, ids included."""
    out = []
    for piece in pieces:
        if piece.logprob is None:
            continue
        top = piece.top or []
        ids = piece.top_ids or [None] * len(top)
        alternatives = [
            token_json(tid, text, logprob=lp) for tid, (text, lp) in zip(ids, top, strict=False)
        ]
        out.append(token_json(piece.token_id, piece.text, logprob=piece.logprob, top=alternatives))
    return out


def answer_json(model: str, ref: str | None, result: Any, logprobs: int) -> dict[str, Any]:
    """``ask --json``: one answer (a :class:`~llmcli.service.turn.TurnResult`)."""
    data: dict[str, Any] = {
        **model_json(model, ref),
        "text": result.text,
        "finish_reason": result.stats.finish_reason,
        "stats": result.stats.to_dict(),
    }
    if logprobs:
        data["tokens"] = logprob_tokens(result.pieces)
    return data
