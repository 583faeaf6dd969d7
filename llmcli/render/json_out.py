"""The one way every ``--json`` is written: one object, UTF-8 as is, a newline, flushed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any


def dumps(data: Any, *, indent: int | None = None, ascii: bool = False) -> str:
    """The JSON text of ``data``: non-ASCII kept readable unless ``ascii`` (text read from
    untrusted model files, where every non-ASCII character is spelled as an escape)."""
    return json.dumps(data, ensure_ascii=ascii, indent=indent)


def write_json(out: IO[str], data: Any, *, indent: int | None = None, ascii: bool = False) -> None:
    """One JSON document and a newline, flushed: every ``--json`` goes through here."""
    out.write(dumps(data, indent=indent, ascii=ascii) + "\n")
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
