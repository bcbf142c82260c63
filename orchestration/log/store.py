"""The event log interface: an append-only sequence of immutable events plus derived views.

Every transition, signal, tool call, retry, compensation and timer is a ``StoredEvent``
with a global ``seq``, a timestamp, a stream id (``wf:<id>``, ``call:<session>``), the
event's position in its stream (``version``), a dotted type and JSON data.

Derived views (the current state of each workflow and call) are folded from the events by
a ``Projector`` *inside the same transaction as the append*, so a view never runs ahead
of or behind its log, even with two processes writing. ``EventStore`` is the protocol the
SQLite store implements and a PostgreSQL store will implement; ``MemoryEventStore`` is
the reference implementation used by the engine benchmark and the store contract tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestration.errors import OrchestrationError

View = dict[str, Any]
Projector = Callable[[View | None, "StoredEvent"], View | None]


class LogError(OrchestrationError):
    """Root of the event log's errors."""


class ConcurrentWriteError(LogError):
    """Another writer appended to a stream since this writer read it."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream!r} was changed by another writer: expected version {expected}, "
            f"found {actual}; reload it and try again (nothing was written)"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class LogCorruptedError(LogError):
    """The log file is damaged; ``voxgate replay --salvage`` copies what is intact."""


class LogBusyError(LogError):
    """The log stayed locked by another process for longer than the busy timeout."""


class LogFullError(LogError):
    """The disk (or the size limit) holding the log is full; nothing was written."""


class EventRejected(LogError):
    """An event the log cannot take, whatever the state of the disk: its data cannot be
    written as JSON (NaN, a cycle, a value whose ``repr`` fails), it is over
    ``MAX_EVENT_BYTES``, or its projection fails. Nothing of the batch was written.
    ``index`` is its place in the batch when the store knows it."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# one event's data as JSON; a bigger one (a whole recording by mistake) is refused rather
# than slowing every later read of its stream
MAX_EVENT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class NewEvent:
    stream: str
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: float | None = None  # the store's clock fills it in when None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    ts: float
    stream: str
    version: int
    type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "data": dict(self.data),
        }


class EventStore(Protocol):
    def append(
        self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None
    ) -> list[StoredEvent]:
        """Append atomically; ``expected`` maps stream -> version the caller last saw."""
        ...

    def read(
        self, after: int = 0, stream: str | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]: ...

    def last_seq(self) -> int: ...

    def version(self, stream: str) -> int: ...

    def view(self, stream: str) -> View | None: ...

    def views(self, prefix: str = "") -> dict[str, View]: ...

    def replace_views(self, views: Mapping[str, View]) -> None:
        """Swap every stored view for ``views`` (used by replay)."""
        ...

    def close(self) -> None: ...


def _jsonable(value: object) -> object:
    # Bus events may carry values JSON has no type for; the log keeps a readable form
    # rather than refusing the event (losing an event is worse than a stringified field).
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return repr(value)


def encode(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=_jsonable, allow_nan=False)


def encode_event(event: NewEvent, index: int) -> str:
    """``event``'s data as the log stores it, or ``EventRejected`` saying why not."""
    try:
        text = encode(event.data)
    except Exception as exc:  # json's ValueError/TypeError/RecursionError, a failing repr
        raise EventRejected(
            f"event {index} ({event.type} on {event.stream}) cannot be stored as JSON: "
            f"{type(exc).__name__}: {exc}; nothing was written", index) from exc
    if len(text) > MAX_EVENT_BYTES:
        raise EventRejected(
            f"event {index} ({event.type} on {event.stream}) is {len(text)} bytes as JSON, "
            f"over the {MAX_EVENT_BYTES} byte limit; nothing was written", index)
    return text


def projection_failed(event: StoredEvent, index: int, exc: Exception) -> EventRejected:
    return EventRejected(
        f"event {index} ({event.type} on {event.stream}) breaks its view's projection: "
        f"{type(exc).__name__}: {exc}; nothing was written", index)


def decode(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("event data is not an object")
    return value


class MemoryEventStore:
    """The event store in memory: same contract as SQLite, nothing survives the process."""

    def __init__(self, projector: Projector, clock: Callable[[], float] = time.time) -> None:
        self._project = projector
        self._clock = clock
        self._events: list[StoredEvent] = []
        self._versions: dict[str, int] = {}
        self._views: dict[str, View] = {}
        self._lock = threading.Lock()

    def append(
        self, events: Sequence[NewEvent], expected: Mapping[str, int] | None = None
    ) -> list[StoredEvent]:
        with self._lock:
            for stream, version in (expected or {}).items():
                actual = self._versions.get(stream, 0)
                if actual != version:
                    raise ConcurrentWriteError(stream, version, actual)
            versions = dict(self._versions)
            stored: list[StoredEvent] = []
            seq = len(self._events)
            for i, new in enumerate(events):  # encode all first: a bad value changes nothing
                seq += 1
                version = versions.get(new.stream, 0) + 1
                versions[new.stream] = version
                stored.append(StoredEvent(
                    seq, self._clock() if new.ts is None else new.ts, new.stream, version,
                    new.type, decode(encode_event(new, i)),
                ))
            for i, event in enumerate(stored):
                try:
                    view = self._project(self._views.get(event.stream), event)
                except Exception as exc:
                    # projections change views in place: fold the touched ones again
                    self._refold({e.stream for e in stored[: i + 1]})
                    raise projection_failed(event, i, exc) from exc
                if view is not None:
                    self._views[event.stream] = view
            self._events.extend(stored)
            self._versions = versions
            return stored

    def _refold(self, streams: set[str]) -> None:
        for stream in streams:
            self._views.pop(stream, None)
        for event in self._events:
            if event.stream in streams:
                view = self._project(self._views.get(event.stream), event)
                if view is not None:
                    self._views[event.stream] = view

    def read(
        self, after: int = 0, stream: str | None = None, limit: int | None = None
    ) -> Iterator[StoredEvent]:
        with self._lock:
            chosen = [
                e for e in self._events[after:] if stream is None or e.stream == stream
            ]
        return iter(chosen if limit is None else chosen[:limit])

    def last_seq(self) -> int:
        return len(self._events)

    def version(self, stream: str) -> int:
        return self._versions.get(stream, 0)

    def view(self, stream: str) -> View | None:
        with self._lock:
            view = self._views.get(stream)
            return None if view is None else decode(encode(view))

    def views(self, prefix: str = "") -> dict[str, View]:
        with self._lock:
            return {k: decode(encode(v)) for k, v in self._views.items() if k.startswith(prefix)}

    def replace_views(self, views: Mapping[str, View]) -> None:
        with self._lock:
            self._views = {k: decode(encode(v)) for k, v in views.items()}

    def close(self) -> None:
        pass
