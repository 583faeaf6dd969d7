"""One writer per file: an OS advisory lock, waited for with a bound and a message.

Why an OS lock (``flock`` / ``msvcrt.locking``) rather than "create a .lock file": the
kernel releases it when the holder dies (Ctrl-C, kill -9, power loss), so a crashed
pull never blocks the next one. The lock file itself is never deleted (deleting it
would let two processes lock two different inodes); it holds the holder's pid, for
the waiting message.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llmcli.errors import StorageError, TemporaryFailure

POLL_S = 0.1


@contextmanager
def exclusive_lock(
    path: Path,
    *,
    what: str,
    wait_s: float,
    on_wait: Callable[[str], None] = lambda message: None,
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the ``with`` block.

    When another process holds it: call ``on_wait`` once, wait up to ``wait_s`` seconds,
    then raise :class:`TemporaryFailure` (exit 75) naming the holder.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot create lock file {path}: {exc.strerror or exc}",
            hint="check disk space and permissions",
        ) from exc
    try:
        _acquire(fd, path, what=what, wait_s=wait_s, on_wait=on_wait)
        _write_pid(fd)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


def _acquire(
    fd: int, path: Path, *, what: str, wait_s: float, on_wait: Callable[[str], None]
) -> None:
    if _try_lock(fd):
        return
    holder = _holder(path)
    on_wait(f"another llmcli {holder} is downloading {what}; waiting up to {wait_s:g} s")
    deadline = time.monotonic() + max(wait_s, 0.0)
    while time.monotonic() < deadline:
        time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))
        if _try_lock(fd):
            return
    raise TemporaryFailure(
        f"another llmcli {holder} is still downloading {what}",
        hint="wait for it to finish and run the command again, or pass --wait SECONDS",
    )


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process (pid {pid})" if pid.isdigit() else "process"


def _write_pid(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, str(os.getpid()).encode("ascii"))
    except OSError:
        pass  # the pid is only for messages


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(fd: int) -> None:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:
            pass

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise StorageError(
                f"cannot lock: {exc.strerror or exc}",
                hint="is the store on a filesystem without locks?",
            ) from exc
        return True

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
