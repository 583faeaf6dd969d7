"""A remote engine: an OpenAI-compatible server (llama-server, vLLM, ollama, llama-cpp-python).

It implements the whole :class:`~llmcli.engine.base.Engine` protocol, so ``ask``
and ``chat`` need not know where the model runs. The server owns the tokenizer and
the chat template, so a :class:`~llmcli.engine.base.Prompt` goes out as it is:
messages to ``/v1/chat/completions``, raw text to ``/v1/completions`` (``stream:
true``), and the server-sent events become :class:`TokenPiece` s. Token ids are
refused. ``count_tokens`` asks the server's tokenizer where it has one, else
estimates (:mod:`llmcli.engine.remote_tokens`); a chat trims by it like a local
one. The engine has no token-level view (``token_level()`` is ``None``).

Failures follow one rule: before the first token, an error is raised (after up
to ``retries`` extra attempts for 429/502/503/504 and connect timeouts, with
backoff); after it, the partial answer is kept and the generation ends with
``finish_reason == "error"`` and ``stats.error`` saying why.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmcli.engine.base import (
    DEFAULT_CTX_CAP,
    Generation,
    GenerationStats,
    Prompt,
    PromptInput,
    Sampling,
    TokenPiece,
    as_prompt,
)
from llmcli.engine.openai_stream import NO_TOKEN, ChunkReader
from llmcli.engine.remote_http import (
    HttpClient,
    RemoteConfig,
    RequestFailed,
    backoff_delay,
    display_url,
)
from llmcli.engine.remote_tokens import TokenCounter
from llmcli.engine.sse import iter_lines
from llmcli.engine.stops import StopMatcher
from llmcli.errors import LlmcliError, ServiceUnavailable, UsageError

if TYPE_CHECKING:
    from llmcli.engine.embed import RemoteEmbeddings


_CONTEXT_KEYS = ("max_model_len", "context_length", "max_context_length", "n_ctx")


def output_format_fields(sampling: Sampling) -> dict[str, Any]:
    """Request fields that constrain the answer's shape (OpenAI's ``response_format``).

    ``{"type": "object"}`` alone (``--json-object``) is OpenAI's ``json_object``; any
    other schema is a strict ``json_schema``. A raw GBNF grammar has no OpenAI form: it
    goes in llama.cpp's own ``grammar`` field (llama-server, llama-cpp-python's server).
    """
    if sampling.grammar is not None:
        return {"grammar": sampling.grammar}
    schema = sampling.json_schema
    if schema is None:
        return {}
    if schema == {"type": "object"}:
        return {"response_format": {"type": "json_object"}}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    }


def remote_only(what: str) -> UsageError:
    return UsageError(
        f"{what} is not available with a remote engine",
        hint="it needs the model's own tokenizer: use a local model "
        "(--engine local, or unset LLMCLI_BASE_URL)",
    )


@dataclass(frozen=True)
class RemoteModel:
    """One entry of ``GET /v1/models``."""

    id: str
    owned_by: str | None = None
    context_length: int | None = None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> RemoteModel:
        return cls(
            id=str(entry.get("id", "")),
            owned_by=entry.get("owned_by") if isinstance(entry.get("owned_by"), str) else None,
            context_length=_context_length(entry),
        )


def _context_length(entry: dict[str, Any]) -> int | None:
    """vLLM says ``max_model_len``; llama-server ``meta.n_ctx_train``; others vary."""
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    candidates = [entry.get(key) for key in _CONTEXT_KEYS] + [meta.get("n_ctx_train")]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class OpenAIEngine:
    """An OpenAI-compatible HTTP server behind the engine protocol."""

    def __init__(
        self,
        config: RemoteConfig,
        model: str | None = None,
        *,
        n_ctx: int | None = None,
        client: HttpClient | None = None,
    ) -> None:
        self.config = config
        self.notices: list[str] = []
        self._http = client or HttpClient(config)
        self.model_name = model or ""
        self.n_ctx = n_ctx or DEFAULT_CTX_CAP
        """The server's window where ``/v1/models`` says it, else 4096 (a budget for chats)."""
        self._counter = TokenCounter(self._http)

    def __repr__(self) -> str:
        return f"OpenAIEngine({display_url(self.config.base_url)!r}, model={self.model_name!r})"

    # -- discovery ------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """``GET /v1/models`` (retried like a generation before its first token)."""
        data = self._with_retries(lambda: self._http.get_json("models"))
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ServiceUnavailable(
                f"{self._http.url('models')} did not return a model list",
                hint="check that the base URL is an OpenAI-compatible API root",
            )
        return [RemoteModel.from_json(e) for e in entries if isinstance(e, dict)]

    def connect(self) -> None:
        """Check the server answers and settle the model name and context size.

        With no model named, a server serving exactly one model gets that one;
        a model the server does not list is a notice, not an error (llama-cpp-python
        and llama-server answer to any name).
        """
        models = self.list_models()
        if not self.model_name:
            if len(models) != 1:
                names = ", ".join(m.id for m in models[:10]) or "none"
                raise UsageError(
                    f"the server serves {len(models)} models ({names})",
                    hint="name one with -m MODEL",
                )
            self.model_name = models[0].id
        listed = {m.id: m for m in models}
        match = listed.get(self.model_name)
        if match is None and models:
            self.notices.append(
                f"the server does not list model {self.model_name!r} "
                f"(it lists: {', '.join(list(listed)[:10])})"
            )
        if match is not None and match.context_length and self.n_ctx == DEFAULT_CTX_CAP:
            self.n_ctx = match.context_length

    def embeddings(self) -> RemoteEmbeddings:
        """``/v1/embeddings`` (the server pools and normalizes; retried like a generation)."""
        from llmcli.engine.embed import RemoteEmbeddings

        return RemoteEmbeddings(self._http, self.model_name, self._with_retries)

    # -- prompts and generation -------------------------------------------------

    def token_level(self) -> None:
        """A server sends text, not token ids or whole distributions."""
        return None

    def count_tokens(self, prompt: PromptInput) -> int:
        """The prompt's size by the server's tokenizer, or an estimate (see remote_tokens)."""
        return self._counter.count(as_prompt(prompt))

    def generate(self, prompt: PromptInput, sampling: Sampling) -> Generation:
        """Start a streamed completion; nothing is sent until the first ``next()``."""
        prompt = as_prompt(prompt)
        if prompt.ids is not None:
            raise remote_only("generating from token ids")
        body = self.request_body(prompt, sampling)
        stats = GenerationStats()
        cancel = threading.Event()
        endpoint = "chat/completions" if prompt.messages is not None else "completions"
        stream = self._stream(endpoint, body, sampling, stats, cancel)
        return Generation(stream, stats, on_cancel=lambda: _cancel(stream, cancel))

    def request_body(self, prompt: Prompt, sampling: Sampling) -> dict[str, Any]:
        """The JSON for the request (llama.cpp's extra sampling names where OpenAI has none)."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling.knob_values("remote"),
        }
        if prompt.messages is not None:
            body["messages"] = [m.to_dict() for m in prompt.messages]
            if sampling.logprobs:
                body["logprobs"] = True
                body["top_logprobs"] = sampling.logprobs
            if sampling.max_tokens is not None:
                body["max_tokens"] = sampling.max_tokens
        else:
            body["prompt"] = prompt.text or ""
            if sampling.logprobs:
                body["logprobs"] = sampling.logprobs
            # /v1/completions defaults to 16 tokens; null means "until the model stops".
            body["max_tokens"] = sampling.max_tokens
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(output_format_fields(sampling))
        return body

    def _stream(
        self,
        endpoint: str,
        body: dict[str, Any],
        sampling: Sampling,
        stats: GenerationStats,
        cancel: threading.Event,
    ) -> Iterator[TokenPiece]:
        reader = ChunkReader(stats, StopMatcher(sampling.stop), self.config.read_timeout_s)
        reader.max_tokens = sampling.max_tokens  # a server may ignore max_tokens: stop here too
        attempt = 0
        try:
            while not cancel.is_set():
                try:
                    with self._http.stream(endpoint, body) as response:
                        lines = iter_lines(reader.watch(response.iter_bytes()))
                        yield from reader.pieces(lines, cancel)
                    break
                except RequestFailed as failure:
                    if reader.produced:
                        reader.fail(failure.error)
                        break
                    if not failure.retryable or attempt >= self.config.retries:
                        raise failure.error from None
                    delay = backoff_delay(attempt, self.config.backoff_s, failure.retry_after)
                    attempt += 1
                    if cancel.wait(delay):
                        break
        except LlmcliError as exc:
            stats.finish_reason = "error"
            stats.error = exc.message
            raise
        except BaseException:  # Ctrl-C in the read, or close() from the consumer
            stats.finish_reason = "interrupted"
            raise
        finally:
            reader.finish(cancelled=cancel.is_set())
        tail = reader.flush()
        if tail:
            yield TokenPiece(text=tail, token_id=NO_TOKEN)

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return call()
            except RequestFailed as failure:
                if not failure.retryable or attempt >= self.config.retries:
                    raise failure.error from None
                time.sleep(backoff_delay(attempt, self.config.backoff_s, failure.retry_after))
                attempt += 1

    def close(self) -> None:
        self._http.close()


def _cancel(stream: Iterator[TokenPiece], cancel: threading.Event) -> None:
    """Stop a generation: flag it, and close the HTTP stream now if it is not mid-read.

    A generator suspended at ``yield`` (the consumer stopped iterating, e.g. after
    Ctrl-C in its own code) is closed here, which closes the response and lets the
    server stop generating. One running in another thread sees the flag at its
    next event.
    """
    cancel.set()
    close = getattr(stream, "close", None)
    if close is not None and not getattr(stream, "gi_running", True):
        with contextlib.suppress(ValueError):
            close()
