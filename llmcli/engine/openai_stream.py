"""Reading a streamed completion: server-sent events into pieces, stats and failures.

The one rule of :mod:`llmcli.engine.openai` lives here: before the first token a
failure is raised (the caller may retry); after it, the answer so far stands and
the generation ends with ``finish_reason == "error"``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from llmcli.engine.base import FinishReason, GenerationStats, TokenPiece
from llmcli.engine.remote_http import RequestFailed, server_message
from llmcli.engine.sse import SSEEvent, SSEFormatError, SSEParser
from llmcli.engine.stops import StopMatcher
from llmcli.errors import LlmcliError, ServiceUnavailable, TemporaryFailure

NO_TOKEN = -1
"""``TokenPiece.token_id`` of remote pieces: the server does not send token ids."""

_FINISH: dict[str, FinishReason] = {"length": "length"}
MAX_TOP_LOGPROBS = 20
"""Alternatives kept per token (OpenAI's own maximum); a server may send any number."""


class ChunkReader:
    """Turns streamed completion chunks into pieces and fills the stats."""

    def __init__(self, stats: GenerationStats, stops: StopMatcher, token_timeout_s: float) -> None:
        self.stats = stats
        self.stops = stops
        self.token_timeout_s = token_timeout_s
        self.started = time.perf_counter()
        self.produced = False
        self._counted = 0
        self._server_finish: str | None = None
        self._usage = False
        self.max_tokens: int | None = None
        self._last_token = self.started

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The response's bytes, each checked against the token deadline as it arrives.

        A read waits at most the timeout for a byte, but a server that trickles bytes
        that never make a token (no newline, pings, an event that never ends) would
        satisfy every read; this makes ``LLMCLI_TIMEOUT`` the longest llmcli waits for
        a token however the bytes come.
        """
        for chunk in chunks:
            self._check_deadline()
            yield chunk

    def pieces(self, lines: Iterable[str], cancel: threading.Event) -> Iterator[TokenPiece]:
        """Pieces from one response; a malformed or cut stream raises :class:`RequestFailed`.

        Works line by line, not event by event, so keep-alive comments (``: ping``)
        still let it notice a cancel or a server that stopped producing tokens.
        """
        parser = SSEParser()
        self._last_token = time.perf_counter()
        try:
            for line in lines:
                if cancel.is_set():
                    return
                event = parser.feed(line)
                if event is not None:
                    if event.data.strip() == "[DONE]":
                        return
                    for piece in self._chunk(event):
                        self._last_token = time.perf_counter()
                        yield piece
                        if self.stops.stopped:
                            return
                    if self.max_tokens is not None and self._counted >= self.max_tokens:
                        self._server_finish = "length"  # the server ignored max_tokens
                        return
                self._check_deadline()
        except SSEFormatError as exc:
            raise _failure(
                ServiceUnavailable(
                    f"the server sent a malformed event stream ({exc})",
                    hint="check that the base URL is an OpenAI-compatible API, not a proxy page",
                )
            ) from exc
        if self._server_finish is None:
            raise _failure(
                ServiceUnavailable(
                    "the server closed the stream before the answer was complete",
                    hint="check the server's log; it may have crashed or run out of memory",
                )
            )

    def _check_deadline(self) -> None:
        if time.perf_counter() - self._last_token > self.token_timeout_s:
            raise _failure(
                TemporaryFailure(
                    f"no token from the server for {self.token_timeout_s:g} s",
                    hint="raise LLMCLI_TIMEOUT to wait longer",
                )
            )

    def _chunk(self, event: SSEEvent) -> list[TokenPiece]:
        try:
            chunk = json.loads(event.data)
        except (ValueError, RecursionError) as exc:
            raise _failure(
                ServiceUnavailable(
                    f"the server sent an event that is not JSON: {event.data[:60]!r}"
                )
            ) from exc
        if not isinstance(chunk, dict):
            raise _failure(ServiceUnavailable(f"unexpected event from the server: {chunk!r:.60}"))
        if "error" in chunk:
            message = server_message(json.dumps(chunk).encode())
            raise _failure(ServiceUnavailable(f"the server reported an error: {message}"))
        self._read_usage(chunk.get("usage"))
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []
        choice = choices[0]
        if choice.get("finish_reason"):
            self._server_finish = str(choice["finish_reason"])
        text = _choice_text(choice)
        return self._to_pieces(text, _choice_logprobs(choice)) if text else []

    def _to_pieces(self, text: str, logprobs: list[_TokenLogprob]) -> list[TokenPiece]:
        if not self.produced:
            self.stats.ttft_s = time.perf_counter() - self.started
            self.produced = True
        self._counted += max(1, len(logprobs))
        shown = self.stops.feed(text)
        if len(logprobs) > 1 and "".join(lp.token for lp in logprobs) == shown:
            return [TokenPiece(lp.token, NO_TOKEN, lp.logprob, lp.top) for lp in logprobs]
        first = logprobs[0] if logprobs else None
        return [
            TokenPiece(
                text=shown,
                token_id=NO_TOKEN,
                logprob=first.logprob if first else None,
                top=first.top if first else None,
            )
        ]

    def _read_usage(self, usage: Any) -> None:
        """The server's token counts; negative, boolean or absurd ones are ignored."""
        if not isinstance(usage, dict):
            return
        prompt = _token_count(usage.get("prompt_tokens"))
        if prompt is not None:
            self.stats.prompt_tokens = prompt
        completion = _token_count(usage.get("completion_tokens"))
        if completion is not None:
            self.stats.generated_tokens = completion
            self._usage = True
        details = usage.get("prompt_tokens_details")
        cached = _token_count(details.get("cached_tokens")) if isinstance(details, dict) else None
        if cached is not None:
            self.stats.cached_tokens = cached

    def fail(self, error: LlmcliError) -> None:
        """An error after the first token: the answer so far stands, marked as failed."""
        self.stats.finish_reason = "error"
        self.stats.error = error.message

    def finish(self, *, cancelled: bool) -> None:
        stats = self.stats
        stats.total_s = time.perf_counter() - self.started
        if not self._usage:
            stats.generated_tokens = self._counted
        if stats.finish_reason in ("error", "interrupted"):
            return
        if cancelled:
            stats.finish_reason = "interrupted"
        elif self.stops.stopped:
            stats.finish_reason = "stop"
        else:
            stats.finish_reason = _FINISH.get(self._server_finish or "stop", "stop")

    def flush(self) -> str:
        if self.stops.stopped or self.stats.finish_reason == "interrupted":
            return ""
        return self.stops.flush()


@dataclass(frozen=True)
class _TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]


def _token_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        return None
    return value


def _failure(error: LlmcliError) -> RequestFailed:
    return RequestFailed(error)


def _choice_text(choice: dict[str, Any]) -> str:
    """``delta.content`` for chat, ``text`` for completions."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _choice_logprobs(choice: dict[str, Any]) -> list[_TokenLogprob]:
    """Chat's ``logprobs.content[]`` or completions' parallel ``tokens``/``top_logprobs`` lists.

    Whatever the server sends, the result is well formed: entries of the wrong shape or
    type, and log-probabilities that are not finite numbers, are dropped (the text
    stands); at most :data:`MAX_TOP_LOGPROBS` alternatives are kept per token.
    """
    data = choice.get("logprobs")
    if not isinstance(data, dict):
        return []
    content = data.get("content")
    if isinstance(content, list):
        items = (_chat_logprob(item) for item in content)
    else:
        tokens, values, tops = (_as_list(data.get(k)) for k in _COMPLETION_KEYS)
        tops += [None] * (len(tokens) - len(tops))
        items = (_completion_logprob(*entry) for entry in zip(tokens, values, tops, strict=False))
    return [item for item in items if item is not None]


_COMPLETION_KEYS = ("tokens", "token_logprobs", "top_logprobs")


def _chat_logprob(item: Any) -> _TokenLogprob | None:
    if not isinstance(item, dict):
        return None
    token, logprob = item.get("token"), _logprob(item.get("logprob"))
    if not isinstance(token, str) or logprob is None:
        return None
    top = []
    for alt in _as_list(item.get("top_logprobs")):
        if isinstance(alt, dict):
            pair = _alternative(alt.get("token"), alt.get("logprob"))
            if pair is not None:
                top.append(pair)
        if len(top) >= MAX_TOP_LOGPROBS:
            break
    return _TokenLogprob(token, logprob, top)


def _completion_logprob(token: Any, value: Any, top: Any) -> _TokenLogprob | None:
    logprob = _logprob(value)
    if not isinstance(token, str) or logprob is None:
        return None
    pairs = [_alternative(t, v) for t, v in top.items()] if isinstance(top, dict) else []
    kept = sorted((p for p in pairs if p is not None), key=lambda p: -p[1])
    return _TokenLogprob(token, logprob, kept[:MAX_TOP_LOGPROBS])


def _alternative(token: Any, value: Any) -> tuple[str, float] | None:
    logprob = _logprob(value)
    return (token, logprob) if isinstance(token, str) and logprob is not None else None


def _logprob(value: Any) -> float | None:
    """A finite number, or ``None`` (booleans, strings, ±inf, NaN, ints too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []
