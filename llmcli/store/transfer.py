"""One file's resumable transfer into its ``.part`` file, checked against the Hub's checksum.

Why a transfer of our own rather than ``hf_hub_download``: see :mod:`llmcli.store.download`
(an interrupted pull must resume in the next process). This module is the part that moves
bytes: one GET at a time from the partial's end (HTTP Range), unbuffered appends so the
file on disk is always a clean prefix, retries for attempts that brought nothing, and the
sha256 (or git blob id) computed as the bytes arrive. It knows nothing of the store's
folders, manifests or locks, which :mod:`llmcli.store.download` handles around it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from llmcli.errors import DataError, ServiceUnavailable, StorageError
from llmcli.store.hub import FileSource, RemoteFile, hub_errors
from llmcli.store.refs import HubRef
from llmcli.units import format_bytes

CHUNK_BYTES = 1 << 20
RETRY_DELAYS_S = (0.5, 1.0, 2.0)  # between attempts that brought no new bytes
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class PullReporter(Protocol):
    """What a pull tells its user; the CLI draws it (Rich bar in a terminal, lines in a pipe)."""

    def note(self, text: str) -> None: ...
    def start_file(self, name: str, total: int, done: int) -> None: ...
    def advance(self, n: int) -> None: ...
    def end_file(self, name: str) -> None: ...


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def new_hasher(file: RemoteFile) -> Hasher:
    """sha256 for LFS files; for plain git files the blob id: sha1 of ``blob SIZE\\0`` + bytes."""
    if file.sha256:
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)
    hasher.update(b"blob %d\0" % file.size)
    return hasher


def expected_digest(file: RemoteFile) -> str:
    return (file.sha256 or file.blob_id or "").lower()


def hash_prefix(path: Path, hasher: Hasher, limit: int) -> None:
    with open(path, "rb") as src:
        remaining = limit
        while remaining > 0:
            block = src.read(min(CHUNK_BYTES * 8, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)


class _PartialFile:
    """The ``.part`` file being filled: its good length and the checksum of those bytes.

    Writes are unbuffered (``os.write``), so ``size`` is exactly what is on disk: a crash or
    a full disk leaves a clean prefix, and the next run resumes from it.
    """

    def __init__(self, path: Path, file: RemoteFile) -> None:
        self.path = path
        self.file = file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0)
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise _storage_error(exc, path, file, 0) from exc
        self.size = os.fstat(self.fd).st_size
        self.digest = new_hasher(file)
        if self.size > file.size:
            self.restart()
        elif self.size:
            hash_prefix(path, self.digest, self.size)

    def restart(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0
        self.digest = new_hasher(self.file)

    def append(self, data: bytes) -> None:
        """Write all of ``data``; on failure cut the file back to its good prefix."""
        view = memoryview(data)
        try:
            os.lseek(self.fd, self.size, os.SEEK_SET)
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise _storage_error(exc, self.path, self.file, self.size) from exc
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        os.close(self.fd)


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file: restart from zero."""


class _NoProgress(Exception):
    """An attempt that brought no bytes (e.g. a 5xx answer)."""


RESUME_HINT = "run the same llmcli pull again to resume (the partial download is kept)"


def transfer(
    source: FileSource,
    path: Path,
    file: RemoteFile,
    reporter: PullReporter,
    *,
    ref: HubRef,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Download ``file`` into ``path`` (resuming it), verify it; returns bytes fetched.

    On a checksum mismatch the partial is deleted and :class:`DataError` raised; on a full
    disk the partial keeps its good prefix and :class:`StorageError` is raised; on a lost
    connection it retries with Range, then raises :class:`ServiceUnavailable`, partial kept.
    """
    partial = _PartialFile(path, file)
    try:
        start = partial.size
        reporter.start_file(file.name, file.size, start)
        _fill(partial, source, reporter, sleep=sleep, ref=ref)
        reporter.end_file(file.name)
    finally:
        partial.close()
    _verify(partial)
    return file.size - start


def _fill(
    partial: _PartialFile,
    source: FileSource,
    reporter: PullReporter,
    *,
    sleep: Callable[[float], None],
    ref: HubRef,
) -> None:
    """Request until the file is whole; give up after attempts in a row that brought nothing."""
    import httpx2

    file = partial.file
    failures = 0
    while partial.size < file.size:
        before = partial.size
        problem = "the server ended the transfer early"
        try:
            _one_request(partial, source, reporter, ref=ref)
        except _RangeIgnored:
            partial.restart()
            reporter.start_file(file.name, file.size, 0)
            continue
        except (httpx2.TransportError, _NoProgress) as exc:
            problem = str(exc) or type(exc).__name__
        if partial.size >= file.size:
            break
        failures = failures + 1 if partial.size == before else 0
        if failures > len(RETRY_DELAYS_S):
            raise ServiceUnavailable(
                f"lost the connection while downloading {file.name} ({problem}; "
                f"{format_bytes(partial.size)} of {format_bytes(file.size)} kept)",
                hint=RESUME_HINT,
            )
        delay = RETRY_DELAYS_S[max(failures - 1, 0)]
        reporter.note(
            f"{problem} at {format_bytes(partial.size)} of {file.name}; retrying in {delay:g} s"
        )
        sleep(delay)


def _one_request(
    partial: _PartialFile, source: FileSource, reporter: PullReporter, *, ref: HubRef
) -> None:
    """One GET from the partial's end; appends what arrives."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, hf_raise_for_status

    offset, size = partial.size, partial.file.size
    headers = dict(source.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = httpx2.Timeout(float(constants.HF_HUB_DOWNLOAD_TIMEOUT), connect=10.0)
    request = get_session().stream(
        "GET", source.url, headers=headers, timeout=timeout, follow_redirects=True
    )
    with request as response:
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise _NoProgress(f"HTTP {status}")
        if status >= 400:
            response.read()
            with hub_errors(ref):
                hf_raise_for_status(response)
        if offset and (
            status == 200 or not _range_starts_at(response.headers.get("Content-Range"), offset)
        ):
            raise _RangeIgnored()
        # No chunk_size: each piece is written as it arrives, so a cut connection loses
        # nothing that was received (a 1 MiB re-chunking buffer would be thrown away).
        for chunk in response.iter_bytes():
            data = chunk[: size - partial.size]
            if not data:
                break
            partial.append(data)
            reporter.advance(len(data))


def _range_starts_at(content_range: str | None, offset: int) -> bool:
    """``bytes 100-199/200`` starts at 100."""
    if not content_range:
        return False
    try:
        first = content_range.split()[1].split("-", 1)[0]
        return int(first) == offset
    except (IndexError, ValueError):
        return False


def _storage_error(exc: OSError, partial: Path, file: RemoteFile, kept: int) -> StorageError:
    if exc.errno in _DISK_FULL:
        return StorageError(
            f"disk full while downloading {file.name} "
            f"({format_bytes(kept)} of {format_bytes(file.size)} kept in {partial})",
            hint=f"free {format_bytes(file.size - kept)} and run the pull again to resume",
        )
    return StorageError(
        f"cannot write {partial}: {exc.strerror or exc}",
        hint="check the disk and its permissions",
    )


def _verify(partial: _PartialFile) -> None:
    """Compare with the published checksum; a mismatch deletes the download."""
    file = partial.file
    got, want = partial.digest.hexdigest(), expected_digest(file)
    if got == want:
        return
    partial.path.unlink(missing_ok=True)
    kind = "sha256" if file.sha256 else "git blob id"
    raise DataError(
        f"{file.name} is corrupted: its {kind} is {got[:16]}… but the Hub publishes "
        f"{want[:16]}…; the download was deleted",
        hint="run the pull again; if it fails again, a proxy or the Hub is damaging the file",
    )
