"""The event log as a served gateway's calls need it: a stored call to carry on
(``CallInfo.resume_from``) and a flush of the bus's log writer before a step with effects.

``create_app`` makes one and gives it to the agents it builds (``AgentSystem(calls=,
durable=)``); the workflow router's lifespan attaches the orchestrator's store and the
bus's log writer once they are open, and detaches them at shutdown. A call that asks to
resume before that, or on a gateway without a log, is refused by the agents
(``ResumeError``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from orchestration.log.backends import open_store
from orchestration.log.buslog import AppendObserver, BusLog, attach_bus
from orchestration.log.events import EventBus
from orchestration.log.store import EventStore, View
from orchestration.log.views import project

log = logging.getLogger(__name__)

# a step waits at most this long for the call's events to reach the log; past it the step
# runs anyway (a call is worth more than its resumability) and the log line says so
FLUSH_TIMEOUT_S = 2.0


class CallLog:
    def __init__(self, flush_timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self.flush_timeout_s = flush_timeout_s
        self._store: EventStore | None = None
        self._sink: BusLog | None = None

    def attach(self, store: EventStore, sink: BusLog | None) -> None:
        self._store, self._sink = store, sink

    def detach(self) -> None:
        self._store = self._sink = None

    def call(self, session: str) -> View | None:
        """The stored view of call ``session`` (``call:<session>``), or None."""
        store = self._store
        return store.view(f"call:{session}") if store is not None else None

    def started(self, session: str) -> dict[str, Any] | None:
        """What ``session.started`` of call ``session`` said (its protocol, call sid)."""
        store = self._store
        if store is None:
            return None
        for event in store.read(stream=f"call:{session}", limit=1):
            return dict(event.data) if event.type == "session.started" else None
        return None

    def end_reason(self, session: str) -> str | None:
        """Why call ``session`` ended (its ``session.ended`` reason), None while it has
        not (or its node died before saying so)."""
        store = self._store
        if store is None:
            return None
        reason = None
        for event in store.read(stream=f"call:{session}"):
            if event.type == "session.ended":
                reason = str(event.data.get("reason", ""))
        return reason

    async def durable(self) -> None:
        """Return once every call event emitted so far is in the log."""
        sink = self._sink
        if sink is None:
            return
        flushed = await asyncio.to_thread(sink.flush, self.flush_timeout_s)
        if not flushed or sink.failing:
            log.warning("the event log is behind (%d events waiting): a call resumed after "
                        "a crash may repeat this step", sink.backlog)


def bus_writer(bus: EventBus, location: str | Path, observer: AppendObserver | None = None,
               ) -> tuple[BusLog, EventStore]:
    """Every event of ``bus`` appended to the log at ``location`` through a store of its
    own: while another process holds the log locked it waits in SQLite's busy handler (at
    most 2 s) and must not hold the connection the engine and the API use meanwhile.
    Close the ``BusLog``, then the store."""
    writer = open_store(location, project, size=2, busy_timeout_s=2.0, check=False)
    return attach_bus(bus, writer, observer=observer), writer
