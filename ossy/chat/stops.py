"""Stop strings: text-level stops over a stream of text pieces.

Owns `StopMatcher`. The engine only stops on token ids; a stop string can span tokens, so the
chat layer matches it here, on the visible answer text, and holds back the tail that could be
the start of a stop string until the next piece decides it.
"""

from __future__ import annotations


class StopMatcher:
    """`feed(text) -> (safe_text, stopped)`; `flush() -> held text` when the stream ends without a
    stop. After a stop, `safe_text` is everything before the stop string, which is dropped."""

    def __init__(self, stops) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self.stops:
            return text, False
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._held = True, ""
            return buffer[:cut], True
        keep = self._partial(buffer)
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[:len(buffer) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held

    def _partial(self, buffer: str) -> int:
        """Length of the longest tail of `buffer` that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:n]):
                    best = n
                    break
        return best
