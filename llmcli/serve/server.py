"""The socket server: one thread per client connection, turns queued fairly per model.

Requests (``op``): ``hello`` (versions), ``open`` (load or reuse a model), ``call``
(a token-level method of the engine: tokenize, render_chat...), ``generate``
(streams ``p`` frames, then one ``end`` frame with the stats), ``cancel``, ``ps``,
``stop`` and ``shutdown``. While a generation streams, the connection's thread keeps
reading: a ``cancel`` frame, or the client going away (Ctrl-C, kill -9), sets the
generation's cancel flag, which reaches llama.cpp's abort callback within
milliseconds, and the model's lock passes to the next client in the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import llmcli
from llmcli.engine.base import Generation, Sampling
from llmcli.engine.wire import (
    PROTOCOL,
    Channel,
    WireError,
    prepare_runtime_dir,
    same_user,
    socket_path,
)
from llmcli.errors import LlmcliError
from llmcli.serve.pool import Loaded, ModelPool, options_from_wire
from llmcli.serve.states import MIN_GAIN, MIN_TOKENS, StateStore

log = logging.getLogger("llmcli.serve")

CALLS = frozenset(
    {
        "tokenize",
        "detokenize",
        "token_bytes",
        "token_text",
        "is_end_of_generation",
        "render_chat",
        "chat_prompt",
        "text_prompt",
        "next_token_logprobs",
        "set_lora_scale",
    }
)
"""Engine methods a client may call (anything else is refused)."""
_SAMPLING_FIELDS = {f.name for f in fields(Sampling)}


def error_frame(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LlmcliError):
        return {
            "ok": False,
            "error": {
                "type": type(exc).__name__,
                "bases": [cls.__name__ for cls in type(exc).__mro__],
                "message": exc.message,
                "hint": exc.hint,
            },
        }
    log.error("internal error: %s", traceback.format_exc())
    return {
        "ok": False,
        "error": {
            "type": "LlmcliError",
            "message": f"the engine server failed: {type(exc).__name__}: {exc}",
            "hint": "see the server log, or run with --keep-alive 0",
        },
    }


def sampling_from_wire(data: dict[str, Any]) -> Sampling:
    values = {k: v for k, v in data.items() if k in _SAMPLING_FIELDS}
    if "stop" in values:
        values["stop"] = tuple(values["stop"])
    return Sampling(**values)


def _to_wire(value: Any) -> Any:
    """Engine results as JSON: bytes as hex, arrays as raw little-endian float64."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if hasattr(value, "tobytes") and hasattr(value, "dtype"):
        import base64

        return {"f64": base64.b64encode(value.astype("<f8").tobytes()).decode()}
    return value


class Server:
    """Listen on the socket until stopped, or idle for ``keep_alive`` seconds."""

    def __init__(
        self,
        *,
        keep_alive: float | None,
        budget: int,
        states: StateStore | None,
        path: Path | None = None,
    ) -> None:
        self.keep_alive = keep_alive
        self.pool = ModelPool(budget)
        self.states = states
        self.path = path or socket_path()
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.connections = 0
        self._conn_lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._inode: int | None = None

    # -- life cycle ---------------------------------------------------------------

    def bind(self) -> None:
        """Create the socket 0600 in the 0700 runtime dir (a stale one is replaced)."""
        prepare_runtime_dir()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(os.fspath(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(64)
        sock.settimeout(0.25)
        self._listener = sock
        self._inode = os.stat(self.path).st_ino

    def serve(self) -> None:
        assert self._listener is not None
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    if self._idle_expired():
                        log.info("idle for %ss: exiting", self.keep_alive)
                        break
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                conn.settimeout(None)
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            self.close()

    def _idle_expired(self) -> bool:
        if not self.keep_alive:
            return False
        with self._conn_lock:
            busy = self.connections > 0
        return not busy and time.monotonic() - self.last_activity > self.keep_alive

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Remove the socket (if it is still ours) and unload every model."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
        self.pool.unload()
        if self.states is not None:
            self.states.flush()

    # -- one client -----------------------------------------------------------------

    def _handle(self, sock: socket.socket) -> None:
        if not same_user(sock):  # SO_PEERCRED: another user's process
            sock.close()
            return
        with self._conn_lock:
            self.connections += 1
        channel = Channel(sock)
        try:
            _Connection(self, channel).run()
        finally:
            channel.close()
            with self._conn_lock:
                self.connections -= 1
                self.last_activity = time.monotonic()


class _Connection:
    def __init__(self, server: Server, channel: Channel) -> None:
        self.server = server
        self.channel = channel
        self.entries: dict[str, Loaded] = {}
        self.turn: _Turn | None = None

    def run(self) -> None:
        try:
            while (message := self.channel.recv()) is not None:
                self.server.last_activity = time.monotonic()
                self.dispatch(message)
        except (OSError, WireError):
            pass
        finally:
            if self.turn is not None:  # the client left mid-answer: free its slot
                self.turn.cancel()
                self.turn.join()

    def reply(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.channel.send(message)

    def dispatch(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "cancel":
            if self.turn is not None:
                self.turn.cancel()
            return
        if self.turn is not None:
            self.turn.join()  # a client sends its next request after the end frame
        handler: Callable[[dict[str, Any]], dict[str, Any] | None] | None = getattr(
            self, f"op_{op}", None
        )
        if handler is None:
            self.reply({"ok": False, "error": {"type": "LlmcliError", "message": f"no op {op!r}"}})
            return
        try:
            answer = handler(message)
        except Exception as exc:
            answer = error_frame(exc)
        if answer is not None:
            self.reply(answer)

    def op_hello(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "version": llmcli.__version__, "protocol": PROTOCOL, "pid": os.getpid()}

    def op_open(self, message: dict[str, Any]) -> dict[str, Any]:
        entry = self.server.pool.get(
            Path(message["path"]), options_from_wire(message["options"]), message.get("trained_ctx")
        )
        self.entries[entry.key] = entry
        engine = entry.engine
        return {
            "ok": True,
            "handle": entry.key,
            "info": {
                "model_name": engine.model_name,
                "n_ctx": engine.n_ctx,
                "n_vocab": engine.n_vocab,
                "notices": list(engine.notices),
                "adds_bos": engine.adds_bos,
                "bos_id": engine.bos_id,
                "eos_id": engine.eos_id,
                "threads": engine.threads,
                "gpu_layers": engine.gpu_layers,
                "loras": [[str(s.path), s.scale] for s in engine.loras],
            },
        }

    def _entry(self, message: dict[str, Any]) -> Loaded:
        entry = self.entries.get(message.get("handle", ""))
        if entry is None:
            raise LlmcliError("unknown model handle", hint="open the model first")
        if entry not in self.server.pool.entries():  # evicted or stopped: load it again
            fresh = self.server.pool.get(entry.path, entry.options, entry.trained_ctx)
            self.entries[entry.key] = entry = fresh
        return entry

    def op_call(self, message: dict[str, Any]) -> dict[str, Any]:
        method = message.get("method")
        if method not in CALLS:
            raise LlmcliError(f"the engine server does not offer {method!r}")
        entry = self._entry(message)
        args = message.get("args") or []
        kwargs = message.get("kwargs") or {}
        if method in ("render_chat", "chat_prompt"):
            from llmcli.engine.base import Message

            args = [[Message(m["role"], m["content"]) for m in args[0]], *args[1:]]
        if method == "next_token_logprobs":  # evaluates: wait for the model like a turn
            entry.lock.acquire()
            try:
                result = entry.engine.next_token_logprobs(*args)
            finally:
                entry.lock.release()
        else:
            result = getattr(entry.engine, method)(*args, **kwargs)
        entry.touch()
        return {"ok": True, "result": _to_wire(result)}

    def op_generate(self, message: dict[str, Any]) -> None:
        entry = self._entry(message)
        prompt = [int(t) for t in message["prompt"]]
        sampling = sampling_from_wire(message.get("sampling") or {})
        self.turn = _Turn(self.server, entry, self.channel, prompt, sampling)
        self.turn.start()
        return None

    def op_ps(self, message: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        return {
            "ok": True,
            "pid": os.getpid(),
            "version": llmcli.__version__,
            "started": server.started,
            "keep_alive": server.keep_alive,
            "budget_bytes": server.pool.budget,
            "models": server.pool.describe(),
        }

    def op_stop(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "stopped": self.server.pool.unload(message.get("model"))}

    def op_shutdown(self, message: dict[str, Any]) -> dict[str, Any]:
        self.server.stop()
        return {"ok": True, "pid": os.getpid()}


class _Turn:
    """One generation for one client, on a thread of its own so cancels get through."""

    def __init__(
        self,
        server: Server,
        entry: Loaded,
        channel: Channel,
        prompt: list[int],
        sampling: Sampling,
    ) -> None:
        self.server = server
        self.entry = entry
        self.channel = channel
        self.prompt = prompt
        self.sampling = sampling
        self.cancelled = threading.Event()
        self.generation: Generation | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def cancel(self) -> None:
        self.cancelled.set()
        generation = self.generation
        if generation is not None:
            generation.cancel()

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            self.channel.send(message)
            return True
        except OSError:
            self.cancel()
            return False

    def _run(self) -> None:
        entry = self.entry
        if not entry.lock.acquire(self.cancelled):  # gave up waiting in the queue
            self._send({"ok": True, "end": {"finish_reason": "interrupted"}})
            return
        try:
            self._generate()
        except Exception as exc:
            self._send(error_frame(exc))
        finally:
            try:
                self._save_state()
            finally:
                entry.touch()
                entry.lock.release()

    def _generate(self) -> None:
        engine = self.entry.engine
        restored = self._restore_state()
        generation = engine.generate(self.prompt, self.sampling)
        self.generation = generation
        if self.cancelled.is_set():
            generation.cancel()
        try:
            for piece in generation:
                frame: dict[str, Any] = {"p": piece.text, "i": piece.token_id}
                if piece.logprob is not None:
                    frame["l"] = piece.logprob
                    frame["t"], frame["ti"] = piece.top, piece.top_ids
                if not self._send(frame):
                    break
        finally:
            generation.close()  # the generation protocol: waits for the engine to stop
        stats = asdict(generation.stats)
        if self.cancelled.is_set():
            log.info(
                "turn cancelled after %d of at most %s tokens",
                generation.stats.generated_tokens,
                self.sampling.max_tokens,
            )
        if restored:
            stats["cached_tokens"] = max(stats["cached_tokens"], restored)
        self._send({"ok": True, "end": stats})

    def _restore_state(self) -> int:
        """Load a saved KV state that covers more of the prompt than the cache does."""
        states, entry = self.server.states, self.entry
        if states is None or len(self.prompt) < MIN_TOKENS:
            return 0
        try:
            held = entry.engine.cached_tokens(self.prompt)
            best = states.best(entry.state_key, self.prompt)
            if best is None or best.shared < held + MIN_GAIN:
                return 0
            payload = states.load(entry.state_key, best)
            if payload is None or not entry.engine.load_sequence(best.tokens, payload):
                log.info("saved KV state %s did not check out: ignored", best.path.name)
                return 0
            log.info("restored a KV state of %d tokens (%d shared)", len(best.tokens), best.shared)
            return min(best.shared, len(self.prompt))
        except Exception:  # a state that does not load is only a cache miss
            log.warning("could not restore a KV state: %s", traceback.format_exc())
            return 0

    def _save_state(self) -> None:
        states, entry = self.server.states, self.entry
        if states is None:
            return
        try:
            tokens, payload = entry.engine.save_sequence()
            if len(tokens) < MIN_TOKENS or states.has(entry.state_key, tokens):
                return
        except Exception:
            log.warning("could not copy a KV state: %s", traceback.format_exc())
            return
        states.save_later(entry.state_key, tokens, payload)


def run_server(server: Server, *, on_ready: Callable[[], None] | None = None) -> None:
    """Bind, then serve until stopped (SIGTERM, SIGINT, ``shutdown``, idle)."""
    # A state write over RLIMIT_FSIZE must fail with EFBIG, not kill the server.
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):
            signal.signal(signum, lambda *_: server.stop())
    server.bind()
    if on_ready is not None:
        on_ready()
    try:
        server.serve()
    except KeyboardInterrupt:
        server.close()
