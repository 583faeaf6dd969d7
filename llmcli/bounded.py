"""Read a small file the user named without hanging on a FIFO or reading ``/dev/zero`` forever.

Config files, ``--chat-template`` files and the input history are read whole. Named by a
user (or an environment variable) they may be a FIFO (``open`` would block until a writer
comes), a character device (``/dev/zero`` never ends) or huge. So the file is opened
non-blocking, must be a regular file, and at most ``limit`` bytes are read.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotRegularFile(OSError):
    """The path is a FIFO, a device or a socket, not a file."""


class FileTooLarge(OSError):
    """The file is larger than the bound its reader allows."""


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of regular file ``path`` (at most ``limit``); ``FileNotFoundError``,
    ``IsADirectoryError``, :class:`NotRegularFile`, :class:`FileTooLarge` or another
    ``OSError`` otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "is not a regular file (a FIFO or device?)")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileTooLarge(errno.EFBIG, f"is larger than {limit} bytes, the most read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_special(path: Path) -> bool:
    """``path`` exists and is not a regular file or directory (FIFO, device, socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
