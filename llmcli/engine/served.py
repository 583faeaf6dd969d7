"""The client side of the engine server: the same engine protocol, over a Unix socket.

:class:`ServedEngine` is what ``ask``, ``chat``, ``next`` and ``tokenize`` get when
``keep_alive`` is not 0: every method is a request to the server (see
:mod:`llmcli.serve.server`), which runs the very same llama.cpp engine, so greedy
output is the same text, byte for byte, as in-process. The model stays loaded in
the server between calls, so a call pays only for its new tokens.

This module is on every warm call's start-up path: it imports the standard
library and llmcli's light modules only (no llama_cpp, no numpy; ``next``'s
log-probabilities import numpy when they arrive).

:func:`connect` finds the server or starts one: under a lock file, so two clients
starting at once make one server; a stale socket (a crashed server) or a server
of another llmcli version is replaced, with a one-line notice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import llmcli
from llmcli import errors, paths
from llmcli.engine.base import (
    Generation,
    GenerationStats,
    LoadOptions,
    LoraSpec,
    Message,
    PromptInput,
    Sampling,
    TokenLevel,
    TokenPiece,
    encode,
)
from llmcli.engine.wire import (
    PROTOCOL,
    Channel,
    lock_path,
    prepare_runtime_dir,
    socket_path,
)
from llmcli.engine.wire import connect as wire_connect
from llmcli.errors import DataError, LlmcliError, ServiceUnavailable, TemporaryFailure

if TYPE_CHECKING:
    import numpy as np

START_TIMEOUT_S = 60.0
LOCK_TIMEOUT_S = 90.0
GONE_HINT = "run the command again (a new server starts), or use --keep-alive 0"
_ERRORS = {
    name: getattr(errors, name)
    for name in (
        "LlmcliError",
        "UsageError",
        "DataError",
        "ModelNotFound",
        "ServiceUnavailable",
        "StorageError",
        "TemporaryFailure",
    )
}


def server_log() -> Path:
    """Where a server started in the background writes its errors."""
    return paths.state_dir() / "serve.log"


def _raise_remote(frame: dict[str, Any]) -> None:
    error = frame.get("error") or {}
    names = [str(name) for name in error.get("bases") or [error.get("type")]]
    cls = next((_ERRORS[name] for name in names if name in _ERRORS), LlmcliError)
    raise cls(str(error.get("message", "the engine server failed")), hint=error.get("hint"))


@dataclass
class Connection:
    """A connected, version-checked channel to the server."""

    channel: Channel
    pid: int
    notices: list[str] = field(default_factory=list)
    started: bool = False
    """This call started the server (the CLI may say so in a terminal)."""

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.channel.send(message)
            frame = self.channel.recv()
        except OSError as exc:
            raise self.gone() from exc
        if frame is None:
            raise self.gone()
        if not frame.get("ok"):
            _raise_remote(frame)
        return frame

    def gone(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"the engine server (pid {self.pid}) went away", hint=GONE_HINT)

    def close(self) -> None:
        self.channel.close()


# -- finding or starting the server ------------------------------------------------------


def _try_connect(path: Path) -> Channel | None:
    """A channel, or None when nobody listens (no socket, or a stale one)."""
    try:
        return wire_connect(path, timeout=5.0)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


def _hello(channel: Channel) -> dict[str, Any] | None:
    try:
        channel.send({"op": "hello", "version": llmcli.__version__, "protocol": PROTOCOL})
        return channel.recv()
    except OSError:
        return None


def _compatible(hello: dict[str, Any] | None) -> bool:
    return bool(
        hello
        and hello.get("ok")
        and hello.get("version") == llmcli.__version__
        and hello.get("protocol") == PROTOCOL
    )


def _retire(channel: Channel, hello: dict[str, Any] | None, path: Path) -> str:
    """Ask an incompatible server to exit; the notice that says what happened."""
    version = (hello or {}).get("version", "unknown")
    pid = (hello or {}).get("pid")
    with contextlib.suppress(OSError):
        channel.send({"op": "shutdown"})
        channel.recv()
    channel.close()
    deadline = time.monotonic() + 5.0
    while path.exists() and time.monotonic() < deadline:
        if _try_connect(path) is None:
            break
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    who = f" (pid {pid})" if pid else ""
    return f"replaced an engine server of llmcli {version}{who}"


def _existing(path: Path, notices: list[str]) -> Connection | None:
    channel = _try_connect(path)
    if channel is None:
        return None
    hello = _hello(channel)
    if _compatible(hello):
        assert hello is not None
        return Connection(channel, int(hello.get("pid", 0)), notices)
    notices.append(_retire(channel, hello, path))
    return None


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """The lock file that makes two clients starting the server at once start one."""
    prepare_runtime_dir()
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TemporaryFailure(
                        "another llmcli is still starting the engine server",
                        hint="try again, or use --keep-alive 0",
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def server_command(keep_alive: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llmcli",
        "serve",
        "--keep-alive",
        "-1" if keep_alive == float("inf") else f"{keep_alive:g}s",
        "--background",
    ]


def _spawn(keep_alive: float, path: Path) -> Connection:
    """Start a server in its own session (no terminal signals reach it); wait for it."""
    log_file = server_log()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            server_command(keep_alive),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        connection = _existing(path, [])
        if connection is not None:
            connection.started = True
            return connection
        if process.poll() is not None:
            raise ServiceUnavailable(
                f"the engine server exited at start (status {process.returncode})",
                hint=f"see {log_file}, or use --keep-alive 0",
            )
        time.sleep(0.02)
    raise ServiceUnavailable("the engine server did not start in time", hint="use --keep-alive 0")


def connect(keep_alive: float, *, start: bool = True) -> Connection:
    """The running server (checked: owner, mode, peer, version), else a new one.

    Raises :class:`~llmcli.engine.wire.UnsafeSocket` for a socket another user
    could have made, and :class:`ServiceUnavailable` when none runs and
    ``start`` is false.
    """
    path = socket_path()
    notices: list[str] = []
    connection = _existing(path, notices)
    if connection is not None:
        return connection
    if not start:
        raise ServiceUnavailable("no engine server is running", hint="start one: llmcli serve")
    with _start_lock():
        connection = _existing(path, notices)  # someone else started it meanwhile
        if connection is not None:
            connection.notices = notices
            return connection
        if path.exists() and not notices:
            notices.append("the engine server had stopped; started a new one")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        connection = _spawn(keep_alive, path)
        connection.notices = notices
        return connection


# -- the engine ---------------------------------------------------------------------------


def options_to_wire(options: LoadOptions) -> dict[str, Any]:
    return {
        "n_ctx": options.n_ctx,
        "gpu_layers": options.gpu_layers,
        "threads": options.threads,
        "loras": [[str(Path(s.path).resolve()), s.scale] for s in options.loras],
        "chat_template": options.chat_template,
    }


def sampling_to_wire(sampling: Sampling) -> dict[str, Any]:
    data = asdict(sampling)
    data["stop"] = list(sampling.stop)
    return data


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    return value


class ServedEngine:
    """A model loaded in the engine server, behind the engine protocol."""

    def __init__(
        self, connection: Connection, path: Path, options: LoadOptions, trained_ctx: int | None
    ) -> None:
        self._conn = connection
        reply = connection.request(
            {
                "op": "open",
                "path": str(path.resolve()),
                "options": options_to_wire(options),
                "trained_ctx": trained_ctx,
            }
        )
        info = reply["info"]
        self._handle = reply["handle"]
        self.model_path = path
        self.model_name: str = info["model_name"]
        self.n_ctx: int = int(info["n_ctx"])
        self.n_vocab: int = int(info["n_vocab"])
        self.adds_bos: bool = bool(info["adds_bos"])
        self.bos_id: int = int(info["bos_id"])
        self.eos_id: int = int(info["eos_id"])
        self.threads: int = int(info["threads"])
        self.gpu_layers: int = int(info["gpu_layers"])
        self.notices: list[str] = [*connection.notices, *info["notices"]]
        self.server_pid = connection.pid
        self.started_server = connection.started
        self._loras = tuple(LoraSpec(Path(p), float(s)) for p, s in info["loras"])
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._active: Iterator[TokenPiece] | None = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._settle()
        reply = self._conn.request(
            {"op": "call", "handle": self._handle, "method": method, "args": args, "kwargs": kwargs}
        )
        return _from_wire(reply.get("result"))

    def _settle(self) -> None:
        """Finish an abandoned generation so the next reply is the next request's."""
        active, self._active = self._active, None
        if active is not None:
            close = getattr(active, "close", None)
            if close is not None:
                close()

    # -- tokens ------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        return [int(t) for t in self._call("tokenize", text, add_bos=add_bos, special=special)]

    def token_bytes(self, token_id: int, *, special: bool = False) -> bytes:
        key = (int(token_id), special)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._call("token_bytes", int(token_id), special=special)
            self._pieces[key] = piece
        return piece

    def detokenize(self, ids: Sequence[int], *, special: bool = False) -> str:
        result: str = self._call("detokenize", [int(i) for i in ids], special=special)
        return result

    def token_text(self, token_id: int) -> str:
        return self.token_bytes(token_id, special=True).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token_id: int) -> bool:
        return bool(self._call("is_end_of_generation", int(token_id)))

    # -- prompts -----------------------------------------------------------------

    def render_chat(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = True
    ) -> str:
        result: str = self._call(
            "render_chat",
            [m.to_dict() for m in messages],
            add_generation_prompt=add_generation_prompt,
        )
        return result

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        return [int(t) for t in self._call("chat_prompt", [m.to_dict() for m in messages])]

    def text_prompt(self, text: str) -> list[int]:
        return [int(t) for t in self._call("text_prompt", text)]

    # -- adapters ------------------------------------------------------------------

    @property
    def loras(self) -> tuple[LoraSpec, ...]:
        return self._loras

    def set_lora_scale(self, index: int, scale: float) -> None:
        self._call("set_lora_scale", index, scale)
        specs = list(self._loras)
        specs[index] = LoraSpec(specs[index].path, scale)
        self._loras = tuple(specs)

    # -- generation ----------------------------------------------------------------

    def count_tokens(self, prompt: PromptInput) -> int:
        return len(encode(self, prompt))

    def token_level(self) -> TokenLevel:
        """The server holds a llama.cpp model: ids, bytes and distributions travel the socket."""
        return self

    def embeddings(self) -> None:
        """Embeddings need a side context of an in-process model: ``embed`` loads one."""
        return None

    def generate(self, prompt: PromptInput, sampling: Sampling) -> Generation:
        prompt = encode(self, prompt)
        if not prompt:
            raise DataError(
                f"the prompt is 0 tokens: {self.model_name}'s tokenizer produced nothing",
                hint="the model's vocabulary cannot spell this text; check the model file",
            )
        if len(prompt) >= self.n_ctx:
            raise DataError(
                f"prompt is {len(prompt)} tokens but the context holds {self.n_ctx}",
                hint="shorten the input or raise --ctx",
            )
        self._settle()
        try:
            self._conn.channel.send(
                {
                    "op": "generate",
                    "handle": self._handle,
                    "prompt": [int(t) for t in prompt],
                    "sampling": sampling_to_wire(sampling),
                }
            )
        except OSError as exc:
            raise self._conn.gone() from exc
        stats = GenerationStats(prompt_tokens=len(prompt))
        pieces = self._stream(stats)
        self._active = pieces
        return Generation(pieces, stats, on_cancel=self._cancel)

    def _cancel(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.channel.send({"op": "cancel"})

    def _stream(self, stats: GenerationStats) -> Iterator[TokenPiece]:
        """Pieces as frames arrive; closed early, it cancels and reads up to the end frame."""
        ended = False
        try:
            while True:
                frame = self._conn.channel.recv()
                if frame is None:
                    ended = True
                    self._server_died(stats)
                    return
                if "p" in frame:
                    top = [(t, float(lp)) for t, lp in frame["t"]] if frame.get("t") else None
                    yield TokenPiece(frame["p"], frame["i"], frame.get("l"), top, frame.get("ti"))
                    continue
                ended = True
                if not frame.get("ok"):
                    _raise_remote(frame)
                _fill_stats(stats, frame.get("end") or {})
                return
        except OSError:
            ended = True
            self._server_died(stats)
        finally:
            if self._active is not None:
                self._active = None
            if not ended:
                self._drain(stats)

    def _drain(self, stats: GenerationStats) -> None:
        self._cancel()
        try:
            while (frame := self._conn.channel.recv()) is not None:
                if "p" not in frame:
                    _fill_stats(stats, frame.get("end") or {})
                    return
        except OSError:
            pass
        stats.finish_reason = "interrupted"

    def _server_died(self, stats: GenerationStats) -> None:
        stats.finish_reason = "error"
        stats.error = (
            f"the engine server (pid {self._conn.pid}) stopped in the middle of the answer"
        )

    def next_token_logprobs(self, prompt: Sequence[int]) -> np.ndarray:
        import base64

        import numpy as np

        result = self._call("next_token_logprobs", [int(t) for t in prompt])
        array: np.ndarray = np.frombuffer(base64.b64decode(result["f64"]), dtype="<f8").copy()
        return array

    def close(self) -> None:
        self._conn.close()


def _fill_stats(stats: GenerationStats, data: dict[str, Any]) -> None:
    for name in (
        "prompt_tokens",
        "cached_tokens",
        "generated_tokens",
        "ttft_s",
        "total_s",
        "finish_reason",
        "error",
    ):
        if name in data:
            setattr(stats, name, data[name])


def open_served(
    path: Path, options: LoadOptions, *, trained_ctx: int | None, keep_alive: float
) -> ServedEngine:
    """Connect (or start the server) and open ``path`` in it."""
    connection = connect(keep_alive)
    try:
        return ServedEngine(connection, path, options, trained_ctx)
    except BaseException:
        connection.close()
        raise
