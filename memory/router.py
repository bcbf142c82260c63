"""Memory routing: each turn, what to read from and write to a caller's long-term memory.

Reads: at the start of a call, the caller's profile (name, number of calls), their last
booking and their latest note, so the greeting can use them ("Welcome back, Ada. Your
appointment is Tuesday at 3 PM."); later, notes or bookings when an agent asks.
Writes: durable facts only: the name a caller gives, notes they dictate, bookings and
tickets made for them. Never the raw turns, and never a secret: every write is checked
by ``find_secret`` and a refusal is an event (``memory.refused``), not a silent drop.

Every read and write is an event on the call's stream: ``memory.read {what, found}``,
``memory.write {kind, id, text}``, ``memory.refused {kind, reason}``. A call without a
caller id has no long-term memory: reads find nothing and writes are skipped
(``memory.skipped``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memory.errors import MemoryStoreError, SecretRefused
from memory.secrets import find_secret
from memory.store import Item, LongTermMemory, caller_key

Emit = Callable[[str, Mapping[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Recall:
    """What the router read when the call started."""

    name: str | None = None
    calls: int = 0  # calls before this one
    last_booking: Item | None = None
    last_note: Item | None = None

    @property
    def returning(self) -> bool:
        return self.calls > 0


class MemoryRouter:
    def __init__(self, store: LongTermMemory | None, caller: str | None, emit: Emit) -> None:
        self.store = store
        self.key = caller_key(caller)
        self._emit = emit
        self.recall_at_start = Recall()

    @property
    def enabled(self) -> bool:
        return self.store is not None and self.key is not None

    def start(self) -> Recall:
        if not self.enabled:
            self._emit("memory.read", {"what": "profile", "found": False,
                                       "reason": "no caller id"})
            return self.recall_at_start
        assert self.store is not None and self.key is not None
        try:
            profile = self.store.touch(self.key)
            bookings = self.store.items(self.key, "booking", limit=1)
            notes = self.store.items(self.key, "note", limit=1)
        except MemoryStoreError as exc:
            self._emit("memory.error", {"op": "start", "error": str(exc)})
            return self.recall_at_start
        self.recall_at_start = Recall(profile.name, profile.calls,
                                      bookings[0] if bookings else None,
                                      notes[0] if notes else None)
        self._emit("memory.read", {
            "what": "profile", "found": profile.calls > 0, "calls": profile.calls,
            "name": profile.name is not None, "booking": bool(bookings), "note": bool(notes),
        })
        return self.recall_at_start

    def set_name(self, name: str) -> bool:
        if not self._writable("name", name):
            return False
        assert self.store is not None and self.key is not None
        try:
            self.store.set_name(self.key, name)
        except SecretRefused as exc:
            self._emit("memory.refused", {"kind": "name", "reason": exc.kind})
            return False
        self._emit("memory.write", {"kind": "name", "text": name})
        return True

    def remember(self, kind: str, text: str, data: Mapping[str, Any] | None = None) -> int | None:
        """Write one durable item; its id, or None if skipped or refused."""
        if not self._writable(kind, text):
            return None
        assert self.store is not None and self.key is not None
        try:
            item_id = self.store.add(self.key, kind, text, data)
        except SecretRefused as exc:
            self._emit("memory.refused", {"kind": kind, "reason": exc.kind})
            return None
        except MemoryStoreError as exc:
            self._emit("memory.error", {"op": "write", "kind": kind, "error": str(exc)})
            return None
        self._emit("memory.write", {"kind": kind, "id": item_id, "text": text[:200]})
        return item_id

    def _writable(self, kind: str, text: str) -> bool:
        secret = find_secret(text)
        if secret is not None:
            self._emit("memory.refused", {"kind": kind, "reason": secret})
            return False
        if not self.enabled:
            self._emit("memory.skipped", {"kind": kind, "reason": "no caller id"})
            return False
        return True

    def recall(self, kind: str, limit: int = 5, query: str | None = None) -> list[Item]:
        if not self.enabled:
            self._emit("memory.read", {"what": kind, "found": False, "reason": "no caller id"})
            return []
        assert self.store is not None and self.key is not None
        try:
            found = (self.store.search(self.key, query, kind, limit) if query
                     else self.store.items(self.key, kind, limit))
        except MemoryStoreError as exc:
            self._emit("memory.error", {"op": "read", "kind": kind, "error": str(exc)})
            return []
        self._emit("memory.read", {"what": kind, "found": bool(found), "count": len(found),
                                   **({"query": query} if query else {})})
        return found

    def update(self, item: Item, data: Mapping[str, Any]) -> None:
        if self.store is None:
            return
        try:
            self.store.update(item.id, {**item.data, **data})
        except SecretRefused as exc:
            self._emit("memory.refused", {"kind": item.kind, "reason": exc.kind})
            return
        self._emit("memory.write", {"kind": item.kind, "id": item.id, "update": sorted(data)})
