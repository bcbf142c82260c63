"""An emulated loudspeaker for the call client: plays queued audio in real time.

Positions are sample indices counted from the call start, so "where playback is" and "what
time it is" are the same number: the device plays exactly one sample per 1/rate seconds
while it has audio and silence otherwise. Nothing here sleeps or reads a clock; the caller
passes the time in, which keeps the timing logic testable.
"""

from __future__ import annotations

from collections import deque


class PlaybackDevice:
    """Queued PCM16 audio, drained in real time, with marks at positions in the queue."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.played = bytearray()  # everything that came out of the speaker since t = 0
        self._queue = bytearray()
        self._marks: deque[tuple[int, str]] = deque()  # (sample position reached, name)

    @property
    def position(self) -> int:
        return len(self.played) // 2

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def queued_samples(self) -> int:
        return len(self._queue) // 2

    def advance(self, t: float) -> tuple[list[str], float | None]:
        """Play up to time ``t``. Returns the marks passed and, if the queue ran dry, when."""
        samples = int(t * self.rate) - self.position
        drained_at = None
        if samples > 0:
            take = min(samples * 2, len(self._queue))
            self.played += self._queue[:take]
            del self._queue[:take]
            if take and not self._queue:
                drained_at = (self.position) / self.rate
            self.played += bytes(samples * 2 - take)
        passed = []
        while self._marks and self._marks[0][0] <= self.position:
            passed.append(self._marks.popleft()[1])
        return passed, drained_at

    def write(self, pcm: bytes) -> None:
        """Queue audio behind what is already queued (call ``advance`` first)."""
        self._queue += pcm[: len(pcm) // 2 * 2]

    def mark(self, name: str) -> bool:
        """Put a mark after the queued audio; True when nothing is queued (it is due now)."""
        if not self._queue:
            return True
        self._marks.append((self.position + self.queued_samples(), name))
        return False

    def clear(self) -> tuple[int, list[str]]:
        """Drop the queue at once: returns the samples dropped and the marks never reached."""
        dropped = self.queued_samples()
        self._queue.clear()
        pending = [name for _, name in self._marks]
        self._marks.clear()
        return dropped, pending

    def next_due(self) -> float | None:
        """When the next mark will be reached, in seconds from the call start."""
        return self._marks[0][0] / self.rate if self._marks else None
