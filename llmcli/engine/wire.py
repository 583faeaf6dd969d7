"""The engine server's wire: where its socket lives, who may use it, and its frames.

Client and server talk over a Unix socket in the per-user runtime dir with
length-prefixed JSON frames (4 bytes big-endian length, then UTF-8 JSON). This
module is imported by the client on every warm call, so it uses the standard
library only: no llama_cpp, no numpy.

Who may connect is decided three times: the runtime dir is 0700 and owned by
this user, the socket is 0600 and owned by this user (a client refuses any other
socket before connecting to it), and the server asks the kernel who is on the
other end (``SO_PEERCRED``) and hangs up on anyone else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import struct
import threading
from pathlib import Path
from typing import Any

from llmcli import paths
from llmcli.errors import LlmcliError, ServiceUnavailable

PROTOCOL = 1
"""Bumped when frames change; a server speaking another protocol (or from another
llmcli version) is replaced, never talked to."""
SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
MAX_FRAME = 256 * 1024 * 1024
"""A frame this large is a broken or hostile peer (the largest real one, a whole
vocabulary of log-probabilities, is about 1 MiB)."""
SUN_PATH_MAX = 104
"""``sockaddr_un.sun_path`` holds 108 bytes on Linux, 104 on macOS."""
_HEADER = struct.Struct(">I")
_UCRED = struct.Struct("3i")


class UnsafeSocket(LlmcliError):
    """The socket or its folder could be used by someone else: refuse to talk to it."""

    status = ServiceUnavailable.status


class WireError(ServiceUnavailable):
    """The peer sent something that is not a frame, or went away."""


# -- where ------------------------------------------------------------------------------


def runtime_dir() -> Path:
    """The runtime dir, or a short stand-in under /tmp when its socket path is too long."""
    base = paths.runtime_dir()
    if len(os.fsencode(base / SOCKET_NAME)) < SUN_PATH_MAX:
        return base
    digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:12]
    return Path("/tmp") / f"llmcli-{os.geteuid()}-{digest}"


def socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def lock_path() -> Path:
    return runtime_dir() / LOCK_NAME


def prepare_runtime_dir() -> Path:
    """Create the runtime dir 0700 (and check it): the socket's first line of defence."""
    folder = runtime_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceUnavailable(
            f"cannot create {folder}: {exc.strerror}", hint="use --keep-alive 0"
        ) from exc
    check_owned(folder, "folder")
    return folder


def _owned_problem(info: os.stat_result) -> str | None:
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not by you (uid {os.geteuid()})"
    if info.st_mode & 0o022:
        return f"is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def check_owned(path: Path, what: str) -> None:
    """Refuse a file or folder someone else owns or could write to."""
    info = os.lstat(path)
    problem = _owned_problem(info)
    if problem is None and what == "socket" and info.st_mode & 0o077:
        problem = f"is open to others (mode {stat.S_IMODE(info.st_mode):04o}, want 0600)"
    if problem is None and what == "socket" and not stat.S_ISSOCK(info.st_mode):
        problem = "is not a socket"
    if problem is not None:
        raise UnsafeSocket(
            f"refusing the engine server's {what} {path}: it {problem}",
            hint=f"remove it (rm -r {path}) or run with --keep-alive 0",
        )


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (Linux)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(data)
    return pid, uid, gid


def same_user(sock: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):  # macOS: the 0700 folder and 0600 socket remain
        return True
    return peer_credentials(sock)[1] == os.geteuid()


# -- frames -----------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(data)) + data


class Channel:
    """One connection: whole frames in, whole frames out, from any thread.

    Received bytes are buffered before they are parsed, so a Ctrl-C arriving
    between two ``recv`` calls loses nothing: the next :meth:`recv` goes on where
    the interrupted one stopped and the stream stays in step.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        frame = encode(message)
        with self._send_lock:
            self.sock.sendall(frame)

    def recv(self) -> dict[str, Any] | None:
        """The next frame, or None when the peer closed the connection."""
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                if self._buffer:
                    raise WireError("the engine server's connection ended inside a frame")
                return None
            self._buffer += chunk

    def _take(self) -> dict[str, Any] | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_FRAME:
            raise WireError(f"a frame of {size} bytes is larger than any llmcli sends")
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        data = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        try:
            message = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WireError(f"the peer sent a frame that is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise WireError("the peer sent a frame that is not an object")
        return message

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(path: Path, *, timeout: float | None = None) -> Channel:
    """Connect to the socket at ``path`` once it passed :func:`check_owned`.

    Raises ``FileNotFoundError``/``ConnectionRefusedError`` (no server, or a stale
    socket) for the caller to act on, :class:`UnsafeSocket` for a foreign one.
    """
    check_owned(path.parent, "folder")
    check_owned(path, "socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.settimeout(None)
        if not same_user(sock):
            raise UnsafeSocket(
                f"the process behind {path} runs as another user",
                hint="remove the socket or run with --keep-alive 0",
            )
    except BaseException:
        sock.close()
        raise
    return Channel(sock)
