"""Bulkheads that report: the shared ``Bulkhead`` plus events for the log and dashboard.

``ObservedBulkhead`` adds, without changing how slots are counted, a ``bulkhead.queued``
event when a call has to wait for a slot and a ``bulkhead.rejected`` event when the
queue is full (the call still fails at once with ``BulkheadFull``). Events go to the
``pool:<name>`` stream through the injected ``emit``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple

from orchestration.patterns.bulkhead import Bulkhead, BulkheadFull

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
Emit = Callable[[str, str, dict[str, Any]], None]  # (pool name, type, data)


class ObservedBulkhead(Bulkhead):
    def __init__(self, name: str, max_concurrent: int, max_queue: int, emit: Emit) -> None:
        super().__init__(name, max_concurrent, max_queue)
        self._emit = emit

    def _counts(self) -> dict[str, Any]:
        return {"active": self.active, "queued": self.queued,
                "max_concurrent": self.max_concurrent, "max_queue": self.max_queue}

    def _report_queued(self) -> None:
        if self.active >= self.max_concurrent and self.queued < self.max_queue:
            self._emit(self.name, "bulkhead.queued", self._counts())

    def _report_rejected(self) -> None:
        self._emit(self.name, "bulkhead.rejected", {**self._counts(), "rejected": self.rejected})

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        self._report_queued()
        try:
            return await super().run(fn)
        except BulkheadFull:
            self._report_rejected()
            raise

    async def run_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        self._report_queued()
        try:
            return await super().run_in_thread(fn, *args)
        except BulkheadFull:
            self._report_rejected()
            raise
