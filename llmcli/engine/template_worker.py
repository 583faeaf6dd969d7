"""Run a chat template's compile or render in a forked child that can be killed.

The sandbox (:mod:`llmcli.engine.sandbox`) checks every value before it is built and
watches the clock at each template line, but a single C-level operation (``10**10**7``,
``repr`` of a list that holds itself a million times over, Jinja2 compiling a 15 MB
template) never returns to Python to be stopped, and a thread cannot be killed. So the
work runs in a child made by ``fork()``: it inherits the compiled template (no start-up
cost beyond the fork, a few milliseconds), runs under an address-space limit, and is
killed with SIGKILL at the deadline or when the user presses Ctrl-C. Its answer (or the
error it hit, as text) comes back through a pipe.

The child never touches llama.cpp: it only runs Python (Jinja2) code, with the garbage
collector off, and leaves with ``os._exit`` so no finalizer of the parent's objects runs.
Where ``fork`` does not exist the work runs in this process (the in-process limits still
apply).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from llmcli.engine.signals import deferred_signals

T = TypeVar("T")
CHILD_MEMORY_BYTES = 1 << 30
"""Address space a child may add to what it inherited (the model's mapping included)."""


class ChildFailed(Exception):
    """The child died without an answer (killed at the deadline, out of memory, crashed)."""

    def __init__(self, reason: str, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class ChildError(Exception):
    """The work raised in the child: ``kind`` names what, ``message`` and ``hint`` say it."""

    def __init__(self, kind: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.kind, self.message, self.hint = kind, message, hint


def can_fork() -> bool:
    return hasattr(os, "fork") and os.environ.get("LLMCLI_TEMPLATE_IN_PROCESS", "") in ("", "0")


def run_in_child(
    work: Callable[[], T], *, timeout_s: float, describe: Callable[[BaseException], ChildError]
) -> T:
    """``work()`` in a forked child, its result here; :class:`ChildError` for what it raised
    (``describe`` turns the exception into text, in the child), :class:`ChildFailed` when it
    died or overran ``timeout_s``. Ctrl-C here kills the child at once and propagates."""
    read_fd, write_fd = os.pipe()
    pid = 0
    try:
        # os.fork() runs at-fork hooks (logging's lock release) in which an exception
        # from a signal handler is "ignored": hold Ctrl-C/SIGTERM across the fork and
        # re-raise them here, where the child is known and can be killed.
        with deferred_signals():
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; coverage cannot follow a fork
                _child(work, describe, read_fd, write_fd)
            os.close(write_fd)
        data = _collect(read_fd, time.monotonic() + timeout_s)
    except BaseException:
        if pid > 0:
            _kill(pid)
        raise
    finally:
        os.close(read_fd)
    if data is None:
        _kill(pid)
        raise ChildFailed("took too long", timed_out=True)
    status = _reap(pid)
    if not data:
        reason = _death(status)
        raise ChildFailed(reason, timed_out=False)
    kind, payload = pickle.loads(data)  # noqa: S301 - our own child wrote it
    if kind == "ok":
        return payload
    raise ChildError(*payload)


def _child(
    work: Callable[[], Any],
    describe: Callable[[BaseException], ChildError],
    read_fd: int,
    write_fd: int,
) -> None:  # pragma: no cover - runs in the child
    code = 0
    try:
        os.close(read_fd)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.disable()
        _limit_memory()
        try:
            payload: tuple[str, Any] = ("ok", work())
        except BaseException as exc:  # noqa: BLE001 - everything goes back as text
            error = describe(exc)
            payload = ("error", (error.kind, error.message, error.hint))
        data = pickle.dumps(payload)
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # noqa: BLE001 - no traceback from a child, ever
        code = 1
    finally:
        os._exit(code)


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    with contextlib.suppress(OSError, ValueError):
        pages = int(open("/proc/self/statm").read().split()[0])  # noqa: SIM115
        current = pages * os.sysconf("SC_PAGE_SIZE")
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + CHILD_MEMORY_BYTES
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _collect(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes until it closes the pipe; None past the deadline."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _kill(pid: int) -> None:
    """SIGKILL now; reap in the background: a child that held a gigabyte takes a while to
    tear down, and Ctrl-C must not wait for that."""
    import threading

    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)

    def reap() -> None:
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)

    threading.Thread(target=reap, name="llmcli-reap", daemon=True).start()


def _reap(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return f"crashed ({sig}; out of memory?)"
    return "failed (it ran out of memory?)"
