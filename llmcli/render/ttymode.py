"""Keep the terminal driver from drawing over a live area when Ctrl-C is pressed.

With the usual settings a terminal's line discipline echoes Ctrl-C as ``^C`` at the
cursor and, on the signal, discards output not yet read by the terminal. Rich's
live area pads its last line to the full width, so the cursor sits in the last
column: the two echoed characters wrap onto a new line, the live area is then
erased one line too low, and the partial answer stayed on screen twice. While an
answer streams to a terminal, :func:`quiet_interrupts` turns ``ECHOCTL`` off (the
control character is echoed as itself, which terminals do not draw) and sets
``NOFLSH`` (nothing already written is dropped), and puts both back afterwards.
Both are harmless if a killed process cannot restore them.
"""

from __future__ import annotations

import contextlib
from typing import IO, Any


class QuietInterrupts:
    """Saved terminal attributes of ``stream``; :meth:`restore` puts them back."""

    def __init__(self, stream: IO[str]) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        try:
            import termios
        except ImportError:  # Windows
            return
        try:
            fd = stream.fileno()
            saved = termios.tcgetattr(fd)
            quiet = list(saved)
            quiet[3] = (saved[3] & ~termios.ECHOCTL) | termios.NOFLSH
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
        except (AttributeError, OSError, ValueError, termios.error):  # not a tty (StringIO, pipe)
            return
        self._fd, self._saved = fd, saved

    def restore(self) -> None:
        if self._fd is None or self._saved is None:
            return
        fd, saved, self._fd = self._fd, self._saved, None
        import termios

        with contextlib.suppress(OSError, termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
