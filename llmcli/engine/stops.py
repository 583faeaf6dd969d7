"""Stop sequences over streamed text.

Text that could be the start of a stop sequence is held back until it is clear
either way, so a stop string is never shown and nothing before it is lost.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed decoded text; get back the text that is safe to show."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Return the text that can be emitted now; sets ``stopped`` on a match."""
        if not self._stops:
            return text
        buffer = self._held + text
        cut = self._first_stop(buffer)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """Text held back at the end of generation (no stop followed it)."""
        held, self._held = self._held, ""
        return held

    def _first_stop(self, buffer: str) -> int | None:
        hits = [i for i in (buffer.find(stop) for stop in self._stops) if i >= 0]
        return min(hits) if hits else None

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest buffer suffix that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:n]):
                    best = n
                    break
        return best
