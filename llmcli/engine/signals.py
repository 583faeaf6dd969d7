"""Hold Ctrl-C and SIGTERM while llama.cpp calls back into Python on this thread.

llama-cpp-python routes every llama.cpp log line through a ctypes callback, and
loading a model logs hundreds of them (``verbose=False`` only filters them in
Python). A signal handler runs at the next Python bytecode, which during a load is
usually inside that callback; the ``KeyboardInterrupt`` it raises there is printed
as "Exception ignored on calling ctypes callback function" (to a stderr the binding
has pointed at /dev/null) and dropped, so the load goes on and the user's Ctrl-C is
lost: ``llmcli ask`` then answers as if nothing had been pressed.

:func:`deferred_signals` swaps the handlers for ones that only record the signal,
and when the block ends restores them and raises the signal again, so the
interrupt takes effect as soon as the C call returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_signals(signums: tuple[int, ...] = HELD) -> Iterator[None]:
    """Record ``signums`` during the block; re-deliver the first one afterwards.

    Only the main thread can install handlers (and only it runs them); elsewhere the
    block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for signum in signums:
        previous[signum] = signal.signal(signum, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python; SIG_DFL is the closest.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])
