"""The in-process event bus: every step of a call or workflow is an immutable event.

Events carry a process-wide monotonic ``seq`` so that a subscriber (the event log, the
dashboard, a test) can order events from many sessions without comparing clocks.
Handlers run synchronously on the emitting thread; they must be quick and must not raise
(a failing handler is logged and skipped, so one bad observer cannot break a call).

With several gateway nodes on one live bus (gateway/cluster), each event carries ``node``,
the id of the node it was emitted on, and other nodes' events are ``relay``-ed into this
bus: they reach only the handlers that subscribed with ``remote=True`` (the live views),
never this node's log writer, metrics or the bridge that publishes (no loops, no event
logged twice). Their ``seq`` is their own node's.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[["Event"], None]


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    ts: float
    session_id: str
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    node: str | None = None  # the node it was emitted on; None: a single-process gateway

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "ts": self.ts,
            "session_id": self.session_id,
            "type": self.type,
            "data": dict(self.data),
        }
        if self.node is not None:
            out["node"] = self.node
        return out


class EventBus:
    """Assigns ``seq`` and fans events out to subscribers."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        start_seq: int = 1,
        redactor: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> None:
        """``redactor`` masks every payload before anyone sees it (see redact.py)."""
        self._clock = clock
        self._redactor = redactor
        self._seq = itertools.count(start_seq)
        self._lock = threading.Lock()
        self._handlers: list[Handler] = []
        self._remote: list[Handler] = []  # handlers that also see other nodes' events
        self.node: str | None = None  # set by the live bus's bridge (gateway/cluster)

    def emit(self, session_id: str, type: str, data: Mapping[str, Any] | None = None) -> Event:
        if self._redactor is not None and data:
            data = self._redactor(data)
        with self._lock:
            event = Event(
                seq=next(self._seq),
                ts=self._clock(),
                session_id=session_id,
                type=type,
                data=MappingProxyType(dict(data or {})),
                node=self.node,
            )
            handlers = list(self._handlers)
        _deliver(handlers, event)
        return event

    def relay(self, event: Event) -> None:
        """Hand another node's ``event`` (already redacted there) to the handlers that
        subscribed with ``remote=True``; nothing else on this node sees it."""
        with self._lock:
            handlers = list(self._remote)
        _deliver(handlers, event)

    def subscribe(self, handler: Handler, *, remote: bool = False) -> Callable[[], None]:
        """``remote``: also receive the events other nodes publish on the live bus."""
        with self._lock:
            self._handlers.append(handler)
            if remote:
                self._remote.append(handler)

        def unsubscribe() -> None:
            with self._lock:
                for handlers in (self._handlers, self._remote):
                    if handler in handlers:
                        handlers.remove(handler)

        return unsubscribe


def _deliver(handlers: list[Handler], event: Event) -> None:
    for handler in handlers:
        try:
            handler(event)
        except Exception:
            log.exception("event handler %r failed on %s", handler, event.type)


class EventRecorder:
    """Keeps every event it sees; used by tests and the CLI to inspect a call."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self._unsubscribe = bus.subscribe(self.events.append)

    def close(self) -> None:
        self._unsubscribe()

    def of_type(self, type: str, session_id: str | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type == type and (session_id is None or e.session_id == session_id)
        ]
