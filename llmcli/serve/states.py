"""Saved KV states: a conversation's prefill, kept on disk across processes.

After a turn the server copies the sequence's KV cells out of llama.cpp
(``llama_state_seq_get_data``) and writes them here with the token ids they hold.
Before a turn it looks for the saved state sharing the longest token prefix with
the new prompt and, when that beats what the loaded model already holds, loads it
(``llama_state_seq_set_data``): ``ask -c`` on a long conversation then evaluates
only the new message, even in a new process with a freshly started server.

A state is trusted only when everything it was computed with matches: the model
file (path, size, mtime), the adapters and their scales, the chat template, the
context size, and the llmcli and llama.cpp versions (the *model key*), and when
its payload's sha256 matches the header. Anything else, a truncated file, a
foreign one, garbage, is a cache miss, never an error. A failed write (disk full,
file size limit) loses only the cache entry; the turn is answered anyway.

Layout: ``KEY16/TOKENS24.kv`` under :func:`llmcli.paths.kv_state_dir`; each file is
``MAGIC``, a 4-byte header length, a JSON header (key, tokens, payload sha256)
and the payload. The folder is capped in bytes; the least recently used files go
first (their mtime is refreshed when loaded).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"LLMCLI-KV1\n"
_LEN = struct.Struct(">I")
MAX_HEADER = 64 * 1024 * 1024
MIN_TOKENS = 256
"""Shorter sequences prefill in well under 0.1 s: not worth a file."""
MIN_GAIN = 64
"""Load a state only if it saves at least this many tokens of prefill."""
DEFAULT_CAP = 2 * 1024**3

log = logging.getLogger("llmcli.serve")


@dataclass(frozen=True)
class Candidate:
    path: Path
    tokens: list[int]
    shared: int
    """Tokens it has in common with the prompt it was looked up for."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class StateStore:
    """Saved states under ``root``, at most ``cap`` bytes in all."""

    def __init__(self, root: Path, *, cap: int = DEFAULT_CAP) -> None:
        self.root = root
        self.cap = cap
        self._lock = threading.Lock()
        self._writers: list[threading.Thread] = []

    def save_later(self, key: str, tokens: Sequence[int], payload: bytes) -> None:
        """Write in the background (the turn's lock is released meanwhile); see :meth:`flush`."""
        writer = threading.Thread(target=self.save, args=(key, tokens, payload), daemon=True)
        self._writers = [w for w in self._writers if w.is_alive()] + [writer]
        writer.start()

    def flush(self) -> None:
        """Wait for background writes: a server that exits finishes its last state."""
        for writer in self._writers:
            writer.join()

    def _folder(self, key: str) -> Path:
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:16]

    @staticmethod
    def _name(tokens: Sequence[int]) -> str:
        data = ",".join(map(str, tokens)).encode()
        return hashlib.sha256(data).hexdigest()[:24] + ".kv"

    # -- looking up -------------------------------------------------------------

    def best(self, key: str, prompt: Sequence[int]) -> Candidate | None:
        """The saved state sharing the longest prefix with ``prompt`` (headers only)."""
        folder = self._folder(key)
        try:
            names = [p for p in folder.iterdir() if p.suffix == ".kv"]
        except OSError:
            return None
        best: Candidate | None = None
        for path in names:
            header = _read_header(path, key)
            if header is None:
                continue
            tokens = header["tokens"]
            shared = common_prefix(tokens, prompt)
            if best is None or shared > best.shared:
                best = Candidate(path, tokens, shared)
        return best

    def load(self, key: str, candidate: Candidate) -> bytes | None:
        """The payload of ``candidate``, or None when it no longer checks out."""
        try:
            with candidate.path.open("rb") as f:
                header = _parse_header(f, key)
                if header is None:
                    return None
                payload = f.read()
        except OSError:
            return None
        if len(payload) != header.get("size") or (
            hashlib.sha256(payload).hexdigest() != header.get("sha256")
        ):
            return None
        with contextlib.suppress(OSError):
            os.utime(candidate.path)  # recently used: evicted last
        return payload

    # -- saving -----------------------------------------------------------------

    def has(self, key: str, tokens: Sequence[int]) -> bool:
        return (self._folder(key) / self._name(tokens)).exists()

    def save(self, key: str, tokens: Sequence[int], payload: bytes) -> bool:
        """Write a state atomically; False (and nothing left behind) when the disk refuses."""
        folder = self._folder(key)
        header = json.dumps(
            {
                "key": key,
                "tokens": list(tokens),
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            }
        ).encode()
        with self._lock:
            tmp: str | None = None
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".kv")
                with os.fdopen(fd, "wb") as f:
                    f.write(MAGIC + _LEN.pack(len(header)) + header)
                    f.write(payload)
                os.replace(tmp, folder / self._name(tokens))
                tmp = None
            except OSError as exc:
                log.warning("could not save a KV state in %s: %s", folder, exc)
                return False
            finally:
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            self._evict()
        log.info("saved a KV state of %d tokens (%d bytes)", len(tokens), len(payload))
        return True

    def _evict(self) -> None:
        """Remove the least recently used files until the folder fits its cap."""
        files: list[tuple[float, int, Path]] = []
        with contextlib.suppress(OSError):
            for path in self.root.glob("*/*.kv"):
                with contextlib.suppress(OSError):
                    info = path.stat()
                    files.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cap:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size


def _read_header(path: Path, key: str) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            return _parse_header(f, key)
    except OSError:
        return None


def _parse_header(f: BinaryIO, key: str) -> dict[str, Any] | None:
    """The header if the file is a state for ``key``; None for anything else."""
    if f.read(len(MAGIC)) != MAGIC:
        return None
    raw = f.read(_LEN.size)
    if len(raw) != _LEN.size:
        return None
    (size,) = _LEN.unpack(raw)
    if size > MAX_HEADER:
        return None
    try:
        header = json.loads(f.read(size))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("key") != key:
        return None
    tokens = header.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        return None
    return header
