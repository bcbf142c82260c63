"""The voice gateway's bus events land in the same log, off the emitting thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from orchestration.log.buslog import attach_bus
from orchestration.log.events import EventBus
from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import MemoryEventStore, NewEvent, StoredEvent
from orchestration.log.views import project


def test_every_bus_event_is_appended_in_order(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "log.db", project)
    bus = EventBus(clock=lambda: 100.0)
    detach = attach_bus(bus, store, batch=64)
    for i in range(500):
        bus.emit(f"s{i % 3}", "turn.final", {"text": f"hello {i}", "pcm": b"\x00\x01"})
    bus.emit("s0", "call.ended", {"reason": "hangup"})
    assert detach.flush()
    events = list(store.read())
    assert len(events) == 501
    assert [e.data["bus_seq"] for e in events] == list(range(1, 502))
    assert events[0].stream == "call:s0" and events[0].ts == 100.0
    assert events[0].data == {"text": "hello 0", "pcm": {"bytes": 2}, "bus_seq": 1}
    view = store.view("call:s0")
    assert view is not None and view["status"] == "ended" and view["events"] == 168
    detach()
    bus.emit("s0", "late", {})  # after detaching, nothing more is written
    assert store.last_seq() == 501 and replay(store).ok
    store.close()


class SlowStore(MemoryEventStore):
    """A real store behind a gate, standing in for a disk that stalls."""

    def __init__(self) -> None:
        super().__init__(project)
        self.gate = threading.Event()
        self.failures_left = 2

    def append(self, events: Any, expected: Any = None) -> list[StoredEvent]:
        self.gate.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("disk I/O error")
        return super().append(events, expected)


def test_a_stalled_or_failing_log_never_blocks_the_bus_and_loses_nothing() -> None:
    store = SlowStore()
    bus = EventBus()
    sink = attach_bus(bus, store, retry_s=0.0)
    for i in range(100):  # returns at once although the store is stalled
        bus.emit("s", "frame", {"i": i})
    assert store.last_seq() == 0
    store.gate.set()
    assert sink.flush()
    assert [e.data["i"] for e in store.read()] == list(range(100))
    assert sink.failures == 2
    sink.close()


def test_bus_and_workflow_events_share_one_log(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "log.db", project)
    bus = EventBus()
    sink = attach_bus(bus, store)
    bus.emit("c1", "call.started", {})
    sink.flush()
    store.append([NewEvent("wf:w1", "workflow.started", {"name": "x", "input": {}})])
    assert set(store.views()) == {"call:c1", "wf:w1"}
    sink()
    store.close()
