"""Put the voice gateway's bus events into the event log without blocking the audio loop.

``attach_bus`` subscribes a handler that only puts the event on an in-memory queue (a
few hundred nanoseconds on the emitting thread); a writer thread drains the queue and
appends in batches, so a slow disk delays the log, never a call. Each bus event becomes
a log event on stream ``call:<session_id>`` with the same type, data and timestamp, and
the bus's own ``seq`` kept as ``data["bus_seq"]`` so the order on the bus can be checked.

What goes wrong, and what happens then (each counted for the metrics, see
docs/observability.md):

* **A poison event** (the store rejects it whatever the disk does: data JSON cannot hold,
  over the size limit, a projection that fails: ``EventRejected``): its batch is split in
  halves until the event is alone; it is logged and dropped, every other event is written,
  each once.
* **An outage** (the log is locked by another process, its disk is full, or any other
  failure to write): the batch is kept and retried every ``retry_s``; events keep queueing
  in memory meanwhile, up to ``limit``. One error is logged when the outage starts and one
  line when it ends, not one per event or attempt.
* **The backlog is full** (``limit`` events waiting): new events are dropped, not the
  oldest, so what reaches the log is each call's beginning without holes; counted, and
  logged once per outage.
* **Closing during an outage**: ``close(timeout)`` keeps trying until ``timeout``, then
  what is still held is dropped, counted and logged.

An observer (the metrics) that raises is logged and ignored: it runs after the append and
can never make a batch be written twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orchestration.log.events import Event, EventBus
from orchestration.log.store import EventRejected, EventStore, NewEvent

log = logging.getLogger(__name__)

_STOP = object()
POISON, BACKLOG_FULL, SHUTDOWN = "poison", "backlog_full", "shutdown"  # why events drop


@dataclass(frozen=True, slots=True)
class _Flush:
    done: threading.Event


class AppendObserver(Protocol):
    """What the writer reports (the gateway's metrics implement it)."""

    def log_appended(self, seconds: float, count: int) -> None:
        """A batch of ``count`` events was appended in ``seconds``."""

    def log_write_failed(self) -> None:
        """An append failed for an outage (it is retried)."""

    def log_dropped(self, count: int, reason: str) -> None:
        """``count`` events will never be in the log (``POISON``, ``BACKLOG_FULL``,
        ``SHUTDOWN``)."""

    def log_backlog(self, size: int) -> None:
        """Events emitted and not yet written."""


class BusLog:
    """The attached writer. Calling it (or ``close()``) detaches, flushes and stops."""

    def __init__(
        self, bus: EventBus, store: EventStore, batch: int = 1000, retry_s: float = 0.5,
        observer: AppendObserver | None = None, limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._observer = observer
        self._batch = batch
        self._retry_s = retry_s
        self._limit = limit
        self._clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._backlog = 0  # taken from the bus, neither written nor dropped yet
        self._wake = threading.Event()  # cuts a retry wait short when closing
        self._deadline: float | None = None  # set by close: give up on an outage after it
        self._outage_since: float | None = None
        self._overflowed = False
        self._closed = False
        self._stopped = False  # the stop marker was taken off the queue while giving up
        self.written = 0
        self.failures = 0
        self.dropped: dict[str, int] = {POISON: 0, BACKLOG_FULL: 0, SHUTDOWN: 0}
        self._thread = threading.Thread(target=self._run, name="voxgate-buslog", daemon=True)
        self._thread.start()
        self._unsubscribe = bus.subscribe(self._take)

    @property
    def backlog(self) -> int:
        return self._backlog

    @property
    def failing(self) -> bool:
        """Is the log unwritable just now (an outage in progress)?"""
        return self._outage_since is not None

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every event emitted before this call is in the log (or dropped)."""
        done = threading.Event()
        self._queue.put(_Flush(done))
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._unsubscribe()
        self._deadline = self._clock() + (timeout if timeout is not None else float("inf"))
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout)

    def __call__(self) -> None:
        self.close()

    # --- the emitting thread ----------------------------------------------------------

    def _take(self, event: Event) -> None:
        with self._lock:
            full = self._backlog >= self._limit
            if not full:
                self._backlog += 1
            first = full and not self._overflowed
            self._overflowed = self._overflowed or full
        if not full:
            self._queue.put(event)
            return
        self._dropped(1, BACKLOG_FULL)
        if first:
            log.error("event log backlog is full (%d events waiting): new events are dropped "
                      "until the log can be written again", self._limit)

    # --- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not (stop or self._stopped):
            item = self._queue.get()
            pending: list[NewEvent] = []
            flushes: list[_Flush] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    flushes.append(item)
                elif isinstance(item, Event):
                    pending.append(NewEvent(f"call:{item.session_id}", item.type,
                                            {**item.data, "bus_seq": item.seq}, item.ts))
                if stop or len(pending) >= self._batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._write(pending)
            for flush in flushes:
                flush.done.set()

    def _write(self, events: list[NewEvent]) -> None:
        # Runs of events to append, in order. A run the store rejects for one of its
        # events is replaced by its two halves; an outage retries the same run. Each run
        # is one transaction, so nothing is ever written twice.
        runs = deque([(0, len(events))] if events else [])
        while runs:
            start, end = runs[0]
            began = time.perf_counter()
            try:
                self._store.append(events[start:end])
            except EventRejected as exc:
                runs.popleft()
                if end - start == 1:
                    self._poison(events[start], exc)
                else:
                    middle = (start + end) // 2
                    runs.extendleft([(middle, end), (start, middle)])
                continue
            except Exception as exc:
                if not self._outage(exc):
                    self._give_up(sum(e - s for s, e in runs))
                    return
                continue
            runs.popleft()
            self._written(end - start, time.perf_counter() - began)

    def _written(self, count: int, seconds: float) -> None:
        self.written += count
        with self._lock:
            self._backlog -= count
            backlog = self._backlog
        if self._outage_since is not None:
            log.warning("event log writable again after %.1f s (%d events still to write, "
                        "%d dropped since start)", self._clock() - self._outage_since,
                        backlog, sum(self.dropped.values()))
            self._outage_since = None
            self._overflowed = False
        self._report(lambda o: o.log_appended(seconds, count))
        self._report(lambda o: o.log_backlog(backlog))

    def _outage(self, exc: Exception) -> bool:
        """Count and (once) log a failed append; wait to retry. False: give up (closing)."""
        self.failures += 1
        self._report(lambda o: o.log_write_failed())
        self._report(lambda o: o.log_backlog(self._backlog))
        if self._outage_since is None:
            self._outage_since = self._clock()
            log.error("event log cannot be written: %s; holding events in memory (up to %d) "
                      "and retrying every %.1f s", exc, self._limit, self._retry_s)
        else:
            log.debug("event log still cannot be written: %s", exc)
        if self._deadline is not None and self._clock() >= self._deadline:
            return False
        self._wake.wait(self._retry_s)
        return True

    def _poison(self, event: NewEvent, exc: EventRejected) -> None:
        log.error("event log: dropped an event it cannot store (%s, bus seq %s): %s",
                  event.stream, event.data.get("bus_seq"), exc)
        self._dropped(1, POISON)

    def _give_up(self, held: int) -> None:
        while True:  # and whatever was still queued behind them
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Event):
                held += 1
            elif isinstance(item, _Flush):
                item.done.set()
            elif item is _STOP:
                self._stopped = True
        log.error("event log still cannot be written at shutdown: %d events dropped", held)
        self._dropped(held, SHUTDOWN)

    def _dropped(self, count: int, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += count
            if reason != BACKLOG_FULL:  # those were never counted in
                self._backlog -= count
        self._report(lambda o: o.log_dropped(count, reason))

    def _report(self, call: Callable[[AppendObserver], None]) -> None:
        if self._observer is None:
            return
        try:
            call(self._observer)
        except Exception:  # after the append: an observer's error must not repeat it
            log.exception("event log observer %r failed", self._observer)


def attach_bus(
    bus: EventBus, store: EventStore, batch: int = 1000, retry_s: float = 0.5,
    observer: AppendObserver | None = None, limit: int = 100_000,
) -> BusLog:
    """Append every event of ``bus`` to ``store``; the returned ``BusLog`` detaches when called.

    ``BusLog.flush()`` waits until everything emitted so far is written; calling it or
    ``close()`` unsubscribes, writes what is queued and stops the writer thread.
    """
    return BusLog(bus, store, batch, retry_s, observer, limit)
