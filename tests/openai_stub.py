"""A small OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose.

Each POST to ``/v1/chat/completions`` or ``/v1/completions`` takes the next
scripted :class:`Reply` (a well-formed stream when the script is empty);
``POST /v1/embeddings`` answers :func:`stub_embedding` of each input unless scripted;
``GET /v1/models`` answers ``models_reply``. With ``tokenizer`` set it also
answers llama-server's ``POST /apply-template`` and ``POST /tokenize`` (one token
per whitespace-separated word, a fixed overhead per message); without it those
routes are 404, as on vLLM. Every request is recorded, and a
reply that waits for the client to go away sets ``disconnected`` when it does,
so tests can check that llmcli really closed the stream.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stub-model"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


Action = Callable[["_Handler", "OpenAIStub"], None]


@dataclass
class Reply:
    """What to do with one request."""

    action: Action
    label: str = ""


@dataclass
class OpenAIStub:
    host: str = "127.0.0.1"
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)
    models_reply: Reply | None = None
    in_flight: int = 0
    """POSTs being answered now; ``max_in_flight`` is the most there ever were at once."""
    max_in_flight: int = 0
    flight: threading.Condition = field(default_factory=threading.Condition)
    tokenizer: bool = False
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def completions(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/v1/")]

    def start(self) -> OpenAIStub:
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: OpenAIStub
    chat: bool = True
    body: dict[str, Any] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.owner.requests.append(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        return body

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._record()
        if self.path.rstrip("/") != "/v1/models":
            return send_json(self, 404, {"error": {"message": f"no route {self.path}"}})
        if self.owner.models_reply is not None:
            return self.owner.models_reply.action(self, self.owner)
        send_json(self, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = self._record() or {}
        if not self.path.startswith("/v1/"):
            return self._tokenizer_route(body)
        owner = self.owner
        default = embeddings() if self.path.rstrip("/").endswith("/embeddings") else None
        if default is not None and not owner.replies:
            return default.action(self, owner)
        reply = owner.replies.popleft() if owner.replies else stream(["Hello", " world"])
        self.chat = "messages" in body
        self.body = body
        with owner.flight:
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            owner.flight.notify_all()
        try:
            reply.action(self, owner)
        finally:
            with owner.flight:
                owner.in_flight -= 1
                owner.flight.notify_all()

    def _tokenizer_route(self, body: dict[str, Any]) -> None:
        """llama-server's template and tokenizer endpoints (at the root, not under /v1)."""
        if not self.owner.tokenizer or self.path not in ("/apply-template", "/tokenize"):
            return send_json(self, 404, {"error": {"message": f"no route {self.path}"}})
        if self.path == "/apply-template":
            text = "".join(f"<{m['role']}> {m['content']} </s> " for m in body["messages"])
            return send_json(self, 200, {"prompt": text + "<assistant>"})
        send_json(self, 200, {"tokens": list(range(len(str(body["content"]).split())))})


# ---- low-level writers --------------------------------------------------------------------


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: Any,
    headers: dict[str, str] | None = None,
) -> None:
    raw = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(raw)


def start_stream(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.wfile.flush()


def write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def end_stream(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def event(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


def token_chunk(chat: bool, text: str, finish: str | None = None) -> dict[str, Any]:
    if chat:
        delta = {"content": text} if text else {}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}
    choice = {"index": 0, "text": text, "finish_reason": finish}
    return {"object": "text_completion", "model": MODEL, "choices": [choice]}


def abort_connection(handler: BaseHTTPRequestHandler) -> None:
    """End the connection in the middle of the chunked body, as a crashed server would.

    A FIN rather than an RST: an RST makes the client's kernel drop data it has
    not read yet, which would lose the tokens sent before the "crash".
    """
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_WR)


def _write_tokens(handler: _Handler, tokens: list[str]) -> None:
    for text in tokens:
        write_chunk(handler, event(token_chunk(handler.chat, text)))


def _wait_for_disconnect(handler: _Handler, stub: OpenAIStub, seconds: float, ping: bool) -> None:
    """Send nothing (or only ``: ping`` comments) until the client leaves."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if ping:
                write_chunk(handler, b": ping\n\n")
            time.sleep(0.05)
            if not ping and _peer_closed(handler):
                break
        else:
            return
    except OSError:
        pass
    stub.disconnected.set()


def _peer_closed(handler: _Handler) -> bool:
    sock = handler.connection
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


# ---- replies ----------------------------------------------------------------------------------

EMBEDDING_DIMS = 16


def stub_embedding(text: str) -> list[float]:
    """A deterministic bag-of-words vector: equal texts give equal vectors."""
    vector = [0.0] * EMBEDDING_DIMS
    for word in text.lower().split():
        vector[sum(word.encode()) % EMBEDDING_DIMS] += 1.0
    return vector


def embeddings() -> Reply:
    """OpenAI's ``/v1/embeddings`` answer, entries in reverse order (``index`` says which)."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        body = stub.requests[-1].body or {}
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [
            {"object": "embedding", "index": i, "embedding": stub_embedding(t)}
            for i, t in enumerate(texts)
        ]
        send_json(handler, 200, {"object": "list", "model": MODEL, "data": data[::-1]})

    return Reply(act, "embeddings")


def stream(
    tokens: list[str],
    *,
    finish: str = "stop",
    usage: dict[str, Any] | None = None,
    done: bool = True,
) -> Reply:
    """A well-formed stream: one event per token, the finish reason, usage, ``[DONE]``."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        write_chunk(handler, event(token_chunk(handler.chat, "", finish)))
        if usage is not None:
            write_chunk(handler, event({"choices": [], "usage": usage}))
        if done:
            write_chunk(handler, event("[DONE]"))
        end_stream(handler)

    return Reply(act, "stream")


def status(code: int, message: str = "", headers: dict[str, str] | None = None) -> Reply:
    def act(handler: _Handler, stub: OpenAIStub) -> None:
        body = {"error": {"message": message or f"stub says {code}", "code": code}}
        send_json(handler, code, body, headers)

    return Reply(act, f"status {code}")


def cut(tokens: list[str]) -> Reply:
    """Send some tokens, then drop the connection in the middle of the body."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        abort_connection(handler)

    return Reply(act, "cut")


def stall(tokens: list[str], *, seconds: float = 30.0, ping: bool = False) -> Reply:
    """Send some tokens, then nothing (or only keep-alive comments) for ``seconds``."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        _wait_for_disconnect(handler, stub, seconds, ping)
        handler.close_connection = True

    return Reply(act, "stall")


def malformed(tokens: list[str], line: bytes) -> Reply:
    """Send some tokens, then a line that is not a server-sent event, then more tokens."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        write_chunk(handler, line + b"\n\n")
        _write_tokens(handler, ["never", " shown"])
        write_chunk(handler, event(token_chunk(handler.chat, "", "stop")))
        write_chunk(handler, event("[DONE]"))
        end_stream(handler)

    return Reply(act, "malformed")


def raw_events(*payloads: bytes) -> Reply:
    """Send these exact bytes as the body, one HTTP chunk each."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        for payload in payloads:
            write_chunk(handler, payload)
        end_stream(handler)

    return Reply(act, "raw")


def echo_when_concurrent(n: int, *, timeout: float = 10.0, delay: float = 0.0) -> Reply:
    """Wait until ``n`` requests are in flight at once (or ``timeout``), then stream back
    ``echo: `` and the last message (or the prompt), after ``delay`` seconds."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        with stub.flight:
            stub.flight.wait_for(lambda: stub.max_in_flight >= n, timeout=timeout)
        time.sleep(delay)
        body = handler.body or {}
        messages = body.get("messages") or [{"content": body.get("prompt", "")}]
        stream(["echo: ", str(messages[-1].get("content", ""))]).action(handler, stub)

    return Reply(act, f"echo when {n} in flight")


def model_list(context_length: int) -> Reply:
    """``GET /v1/models`` naming the stub's model with a context size (as vLLM does)."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        entry = {"id": MODEL, "object": "model", "max_model_len": context_length}
        send_json(handler, 200, {"object": "list", "data": [entry]})

    return Reply(act, "models")


# ---- hostile servers (tests/faults/test_remote_limits.py) --------------------------------------


def _send_until_gone(handler: _Handler, stub: OpenAIStub, piece: bytes, *, seconds: float) -> None:
    """Write ``piece`` as HTTP chunks, as fast as the client reads, until it hangs up."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            write_chunk(handler, piece)
    except OSError:
        stub.disconnected.set()
    handler.close_connection = True


def endless_models(*, seconds: float = 60.0) -> Reply:
    """``GET /v1/models`` whose list never ends (a body far larger than any real one)."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        write_chunk(handler, b'{"object": "list", "data": [')
        entry = json.dumps({"id": "m" * 1000, "object": "model"}).encode() + b", "
        _send_until_gone(handler, stub, entry * 64, seconds=seconds)

    return Reply(act, "endless models")


def endless_event(tokens: list[str], *, seconds: float = 60.0) -> Reply:
    """Some tokens, then ``data:`` lines that never end their event with a blank line."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        _send_until_gone(handler, stub, b"data: " + b"x" * 1000 + b"\n", seconds=seconds)

    return Reply(act, "endless event")


def trickle(tokens: list[str], *, every: float = 0.05, seconds: float = 60.0) -> Reply:
    """Some tokens, then one byte at a time with no newline: each read succeeds, no line ends."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        start_stream(handler)
        _write_tokens(handler, tokens)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                write_chunk(handler, b"d")
                time.sleep(every)
        except OSError:
            stub.disconnected.set()
        handler.close_connection = True

    return Reply(act, "trickle")


def redirect_loop() -> Reply:
    """A 307 back to the same URL, for ever (307 keeps the method and the body)."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        handler.send_response(307)
        handler.send_header("Location", handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return Reply(act, "redirect loop")


def bad_gzip(*, event_stream: bool) -> Reply:
    """A body that says ``Content-Encoding: gzip`` and is not gzip."""

    def act(handler: _Handler, stub: OpenAIStub) -> None:
        garbage = b"this is not gzip \x00\x01\x02" * 100
        handler.send_response(200)
        kind = "text/event-stream" if event_stream else "application/json"
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(garbage)))
        handler.end_headers()
        handler.wfile.write(garbage)

    return Reply(act, "bad gzip")
