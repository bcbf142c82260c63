"""The bus's log writer against real faults: events the log cannot store, an observer that
raises."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestration.buslog import attach_bus
from orchestration.events import EventBus
from orchestration.sqlite_store import SQLiteEventStore
from orchestration.store import StoredEvent, View
from orchestration.views import project


class Recorder:
    """An observer that keeps what the writer reported (the metrics' counterpart)."""

    def __init__(self) -> None:
        self.appended: list[int] = []
        self.failures = 0
        self.dropped: dict[str, int] = {}
        self.backlog: list[int] = []

    def log_appended(self, seconds: float, count: int) -> None:
        self.appended.append(count)

    def log_write_failed(self) -> None:
        self.failures += 1

    def log_dropped(self, count: int, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def log_backlog(self, size: int) -> None:
        self.backlog.append(size)


class RaisingObserver(Recorder):
    def log_appended(self, seconds: float, count: int) -> None:
        super().log_appended(seconds, count)
        raise RuntimeError("metrics backend is down")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def bus_seqs(store: SQLiteEventStore) -> list[int]:
    return [int(e.data["bus_seq"]) for e in store.read()]


def rejecting(view: View | None, event: StoredEvent) -> View | None:
    """The real projection, except that it breaks on one event type."""
    if event.type == "breaks.projection":
        raise KeyError("state")
    return project(view, event)


def test_poison_events_are_dropped_once_each_and_the_rest_written_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteEventStore(tmp_path / "log.db", rejecting)
    bus = EventBus()
    seen = Recorder()
    sink = attach_bus(bus, store, batch=1000, retry_s=0.01, observer=seen)
    circular: dict[str, Any] = {}
    circular["self"] = circular
    poison: dict[int, dict[str, Any]] = {
        10: {"x": math.nan}, 25: {"obj": BadRepr()}, 40: {"pcm": "x" * 2_000_000},
        55: {"loop": circular}}
    for i in range(70):
        if i == 63:
            bus.emit("s1", "breaks.projection", {"i": i})
        else:
            bus.emit("s1", "turn.final", {"i": i, **poison.get(i, {})})
    assert sink.flush(timeout=10)
    kept = [i for i in range(70) if i not in poison and i != 63]
    assert [e.data["i"] for e in store.read()] == kept  # in order, each once
    assert bus_seqs(store) == [i + 1 for i in kept]
    assert sink.dropped["poison"] == 5 and seen.dropped == {"poison": 5}
    assert sink.failures == 0 and sink.backlog == 0 and sum(seen.appended) == len(kept)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 5 and all("dropped an event it cannot store" in e for e in errors)
    assert any("over the 1048576 byte limit" in e for e in errors)
    assert any("breaks its view's projection" in e for e in errors)
    sink.close()
    store.close()


def test_an_observer_that_raises_never_makes_a_batch_be_written_twice(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteEventStore(tmp_path / "log.db", project)
    bus = EventBus()
    sink = attach_bus(bus, store, retry_s=0.01, observer=RaisingObserver())
    for i in range(50):
        bus.emit("s1", "turn.final", {"i": i})
    assert sink.flush(timeout=10)
    assert bus_seqs(store) == list(range(1, 51))
    assert sink.failures == 0
    assert any("observer" in r.getMessage() for r in caplog.records)
    sink.close()
    store.close()
