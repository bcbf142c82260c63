"""Bulkheads: bounded concurrency plus a bounded wait queue for one shared resource.

A CPU-bound model (whisper, piper) serves every call in the process. Without a limit, ten
callers finishing a sentence at once would start ten transcriptions on two cores and all
of them would be late. A bulkhead lets ``max_concurrent`` jobs run, lets ``max_queue``
more wait in FIFO order, and rejects the rest at once with ``BulkheadFull`` so the caller
can degrade (say "one moment", drop a speculative transcription) instead of piling up.

Slots are counted under a ``threading.Lock`` rather than with ``asyncio.Semaphore``: the
bulkhead is process-wide, so it must not bind to one event loop, and a slot held by a
worker thread is given back from that thread when the blocking call really ends.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar, TypeVarTuple

from orchestration.errors import OrchestrationError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class BulkheadFull(OrchestrationError):
    """Every slot of a bulkhead is busy and its wait queue is full."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int) -> None:
        super().__init__(
            f"bulkhead {name!r} is full: {max_concurrent} running and {max_queue} waiting "
            f"(max_concurrent={max_concurrent}, max_queue={max_queue}); try again later"
        )
        self.name = name


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    # set under the bulkhead lock when a released slot is handed to this waiter
    granted: bool = field(default=False)


class Bulkhead:
    """At most ``max_concurrent`` jobs at once, at most ``max_queue`` waiting."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1:
            raise ValueError(f"bulkhead {name!r}: max_concurrent must be >= 1")
        if max_queue < 0:
            raise ValueError(f"bulkhead {name!r}: max_queue must be >= 0")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._active = 0
        self._rejected = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return (
            f"Bulkhead({self.name!r}, active={self.active}/{self.max_concurrent}, "
            f"queued={self.queued}/{self.max_queue}, rejected={self.rejected})"
        )

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def rejected(self) -> int:
        return self._rejected

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` inside a slot; raise ``BulkheadFull`` if none is free or queued."""
        await self._acquire()
        try:
            return await fn()
        finally:
            self._release()

    async def run_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run blocking ``fn(*args)`` on this bulkhead's own thread pool, inside a slot.

        If the awaiting task is cancelled while the call waits in the queue, the queue
        place is freed at once. A call already running on a thread cannot be interrupted:
        it finishes, its result is discarded, and its slot is freed only then, so
        ``active`` always matches the threads really busy.
        """
        await self._acquire()
        try:
            job: Future[T] = self._pool().submit(fn, *args)
        except BaseException:
            self._release()
            raise
        job.add_done_callback(lambda _: self._release())
        # cancelling this await cancels ``job`` if it has not started yet
        return await asyncio.wrap_future(job)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the thread pool (running calls finish); a later call makes a new one."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    # --- slots ---------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.max_concurrent,
                    thread_name_prefix=f"bulkhead-{self.name}",
                )
            return self._executor

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._active < self.max_concurrent and not self._waiters:
                self._active += 1
                return
            if len(self._waiters) >= self.max_queue:
                self._rejected += 1
                raise BulkheadFull(self.name, self.max_concurrent, self.max_queue)
            waiter = _Waiter(loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:
                # the slot reached us just as we were cancelled: pass it on
                self._release()
            raise

    def _release(self) -> None:
        # May run on a worker thread (done callback) or on any event loop.
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                waiter.granted = True
                try:
                    waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                except RuntimeError:
                    # that waiter's loop is closed, nobody will resume it; try the next
                    continue
                return  # the slot moves to the waiter, ``active`` is unchanged
            self._active -= 1


_shared: dict[str, Bulkhead] = {}
_shared_lock = threading.Lock()


def shared_bulkhead(name: str, max_concurrent: int, max_queue: int) -> Bulkhead:
    """The process-wide bulkhead called ``name``, created with the first caller's limits.

    Components that serve every call (the STT and TTS models) use this when no bulkhead is
    injected, so their limits hold across sessions rather than per instance.
    """
    with _shared_lock:
        bulkhead = _shared.get(name)
        if bulkhead is None:
            bulkhead = _shared[name] = Bulkhead(name, max_concurrent, max_queue)
        return bulkhead


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def shared_bulkheads() -> list[Bulkhead]:
    """Every process-wide bulkhead (for metrics)."""
    with _shared_lock:
        return list(_shared.values())
