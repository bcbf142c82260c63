"""Put the voice gateway's bus events into the event log without blocking the audio loop.

``attach_bus`` subscribes a handler that only puts the event on an in-memory queue (a
few hundred nanoseconds on the emitting thread); a writer thread drains the queue and
appends in batches, so a slow disk delays the log, never a call. Each bus event becomes
a log event on stream ``call:<session_id>`` with the same type, data and timestamp, and
the bus's own ``seq`` kept as ``data["bus_seq"]`` so the order on the bus can be checked.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestration.events import Event, EventBus
from orchestration.store import EventStore, NewEvent

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class _Flush:
    done: threading.Event


AppendObserver = Callable[[float, int], None]  # (seconds one batch took, events in it)


class BusLog:
    """The attached writer. Calling it (or ``close()``) detaches, flushes and stops."""

    def __init__(
        self,
        bus: EventBus,
        store: EventStore,
        batch: int = 1000,
        retry_s: float = 0.5,
        on_append: AppendObserver | None = None,
    ) -> None:
        self._store = store
        self._on_append = on_append
        self._batch = batch
        self._retry_s = retry_s
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="voxgate-buslog", daemon=True)
        self._thread.start()
        self._unsubscribe = bus.subscribe(self._queue.put)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event emitted before this call is in the log."""
        done = threading.Event()
        self._queue.put(_Flush(done))
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def __call__(self) -> None:
        self.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            pending: list[NewEvent] = []
            flushes: list[_Flush] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                elif isinstance(item, Event):
                    pending.append(
                        NewEvent(
                            f"call:{item.session_id}",
                            item.type,
                            {**item.data, "bus_seq": item.seq},
                            item.ts,
                        )
                    )
                if stop or len(pending) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(pending)
            for flush in flushes:
                flush.done.set()

    def _write(self, pending: list[NewEvent]) -> None:
        # A busy or failing log must not lose the batch: keep retrying it (the queue keeps
        # growing meanwhile, which is memory, not lost events), and say so in the logs.
        while pending:
            try:
                started = time.perf_counter()
                self._store.append(pending)
                self.written += len(pending)
                if self._on_append is not None:
                    self._on_append(time.perf_counter() - started, len(pending))
                return
            except Exception:
                self.failures += 1
                log.exception("event log append failed; retrying %d events", len(pending))
                threading.Event().wait(self._retry_s)


def attach_bus(
    bus: EventBus,
    store: EventStore,
    batch: int = 1000,
    retry_s: float = 0.5,
    on_append: AppendObserver | None = None,
) -> BusLog:
    """Append every event of ``bus`` to ``store``; the returned ``BusLog`` detaches when called.

    ``BusLog.flush()`` waits until everything emitted so far is written; calling it or
    ``close()`` unsubscribes, writes what is queued and stops the writer thread.
    """
    return BusLog(bus, store, batch, retry_s, on_append)
