"""Synthesised audio of the lines an agent says again and again ("Is there anything else I
can help with?", "Sorry, I didn't get that.", reprompts, greetings), kept so a repeat costs
no synthesis: the first audio of such a line is ready at once and two cores spend their
time on the words that are new.

A line is kept the second time it is synthesised (a one-off sentence with a caller's name
or a booking time never displaces the fixed phrases), or at once when it is ``pinned``
(the session's own lines, known at start-up). The least recently used lines go first once
the audio kept passes ``max_bytes``. Keys hold the text as spoken and whatever else shapes
the audio (the voice's model file, its settings), so two voices never share an entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

SEEN_MAX = 4096  # lines heard once, remembered so that the second time keeps them


class AudioCache:
    def __init__(self, max_bytes: int, max_chars: int) -> None:
        self.max_bytes = max_bytes
        self.max_chars = max_chars  # longer lines are rarely fixed phrases
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._audio: OrderedDict[Hashable, bytes] = OrderedDict()
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()  # syntheses run on several pool threads

    def __len__(self) -> int:
        return len(self._audio)

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            pcm = self._audio.get(key)
            if pcm is None:
                self.misses += 1
                return None
            self._audio.move_to_end(key)
            self.hits += 1
            return pcm

    def offer(self, key: Hashable, text: str, pcm: bytes, pin: bool = False) -> None:
        """Audio just synthesised for ``text``: kept if it was seen before (or ``pin``)."""
        if len(text) > self.max_chars or len(pcm) > self.max_bytes:
            return
        with self._lock:
            if not pin and key not in self._seen:
                self._seen[key] = None
                if len(self._seen) > SEEN_MAX:
                    self._seen.popitem(last=False)
                return
            self._seen.pop(key, None)
            old = self._audio.pop(key, None)
            self.bytes += len(pcm) - (len(old) if old is not None else 0)
            self._audio[key] = pcm
            while self.bytes > self.max_bytes:
                _, dropped = self._audio.popitem(last=False)
                self.bytes -= len(dropped)
