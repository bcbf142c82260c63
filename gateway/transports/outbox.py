"""One writer per WebSocket, with control messages that jump the queue.

A reply's audio is queued in many small messages; when the caller barges in, the clear
must not wait behind them. ``clear`` drops every queued audio message (and the marks
between them: that audio will never be played) and puts the clear message first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Payload = str | bytes


@dataclass(frozen=True, slots=True)
class _Item:
    payload: Payload
    droppable: bool  # reply audio and its marks; a clear removes them


class Outbox:
    def __init__(
        self,
        send_text: Callable[[str], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._send_text = send_text
        self._send_bytes = send_bytes
        self._items: deque[_Item] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0

    def put(self, payload: Payload, *, droppable: bool = False) -> None:
        if self._closed:
            return
        self._items.append(_Item(payload, droppable))
        self._ready.set()

    def clear(self, control: Payload) -> int:
        """Drop queued reply audio and send ``control`` before anything else."""
        kept = deque(item for item in self._items if not item.droppable)
        dropped = len(self._items) - len(kept)
        self.dropped += dropped
        kept.appendleft(_Item(control, False))
        self._items = kept
        self._ready.set()
        return dropped

    async def run(self) -> None:
        """Send queued messages in order until closed; a send error ends the writer."""
        while True:
            while self._items:
                item = self._items.popleft()
                if isinstance(item.payload, bytes):
                    await self._send_bytes(item.payload)
                else:
                    await self._send_text(item.payload)
            if self._closed:
                return
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """Stop after what is queued has been sent."""
        self._closed = True
        self._ready.set()

    def pending(self) -> int:
        return len(self._items)
