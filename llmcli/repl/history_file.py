"""prompt_toolkit input history that two chats can append to at the same time.

prompt_toolkit's ``FileHistory`` writes an entry with several ``write`` calls; two
processes appending at once can interleave them and mix two entries. Here each
entry is one ``os.write`` on an ``O_APPEND`` descriptor, taken under an exclusive
``flock`` on a sibling lock file (readers take a shared one), so entries arrive
whole and in order. The file is private (0600): people type secrets into chats.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prompt_toolkit.history import FileHistory

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; single appends are still whole
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def locked(lock_path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` (created if needed) for the block."""
    if fcntl is None:
        yield
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def entry_bytes(text: str, when: datetime.datetime | None = None) -> bytes:
    """One history entry in FileHistory's format: a '# time' line, then '+line' lines."""
    stamp = when or datetime.datetime.now()
    lines = "".join(f"+{line}\n" for line in text.split("\n"))
    return f"\n# {stamp}\n{lines}".encode("utf-8", errors="replace")


MAX_HISTORY_BYTES = 64 << 20
"""A larger input history is not loaded (the chat starts without it, and says so)."""


class LockedFileHistory(FileHistory):
    """A ``FileHistory`` whose appends are atomic between processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.failed = False
        super().__init__(str(path))

    def load_history_strings(self) -> Iterable[str]:
        from llmcli.bounded import is_special

        try:
            if is_special(self.path) or self.path.stat().st_size > MAX_HISTORY_BYTES:
                self.failed = True  # a FIFO or /dev/zero would hang the chat's start
                return []
        except FileNotFoundError:
            pass
        except OSError:
            self.failed = True
            return []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with locked(self.lock_path, exclusive=False):
                return list(super().load_history_strings())
        except OSError:
            self.failed = True
            return []

    def store_string(self, string: str) -> None:
        """Append one entry; a history that cannot be written never stops the chat."""
        from llmcli.bounded import is_special

        if is_special(self.path):
            self.failed = True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with locked(self.lock_path, exclusive=True):
                append_whole(self.path, entry_bytes(string))
        except OSError:
            self.failed = True


def append_whole(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
