"""The bus's log writer against real faults: events the log cannot store, an observer that
raises, a log locked by another connection, a full database, a full disk (tmpfs)."""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration.log.buslog import BusLog, attach_bus
from orchestration.log.events import EventBus
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import LogFullError, NewEvent, StoredEvent, View
from orchestration.log.views import project


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
    # the event log's own errors: a LiveKit test earlier in this worker may still log from
    # its FFI thread ("Event loop is closed")
    errors = [r.getMessage() for r in caplog.records
              if r.levelno == logging.ERROR and r.name == "orchestration.log.buslog"]
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


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[SQLiteEventStore, sqlite3.Connection]]:
    """A log, and another connection holding its write lock (as another process would)."""
    store = SQLiteEventStore(tmp_path / "log.db", project, busy_timeout_s=0.05)
    other = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    yield store, other
    other.close()
    store.close()


def test_a_locked_log_holds_events_then_writes_each_once(
        locked: tuple[SQLiteEventStore, sqlite3.Connection],
        caplog: pytest.LogCaptureFixture) -> None:
    store, other = locked
    bus = EventBus()
    seen = Recorder()
    sink = attach_bus(bus, store, batch=20, retry_s=0.01, observer=seen)
    started = time.monotonic()
    for i in range(100):
        bus.emit(f"s{i % 2}", "turn.final", {"i": i})
    assert time.monotonic() - started < 0.5  # the emitting side never waits
    until(lambda: sink.failures >= 5)  # several attempts, still one error in the log
    assert sink.failing and sink.backlog == 100 and store.last_seq() == 0
    assert seen.failures == sink.failures and seen.backlog[-1] == 100
    other.execute("ROLLBACK")
    assert sink.flush(timeout=10)
    assert sorted(bus_seqs(store)) == list(range(1, 101))  # each once
    assert not sink.failing and sink.backlog == 0 and seen.backlog[-1] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event log cannot be written" in m for m in messages) == 1
    assert "is locked by another writer" in next(m for m in messages if "cannot be" in m)
    assert sum("event log writable again" in m for m in messages) == 1
    sink.close()


def test_a_full_backlog_drops_new_events_and_says_so_once(
        locked: tuple[SQLiteEventStore, sqlite3.Connection],
        caplog: pytest.LogCaptureFixture) -> None:
    store, other = locked
    bus = EventBus()
    seen = Recorder()
    sink = attach_bus(bus, store, batch=10, retry_s=0.01, observer=seen, limit=50)
    for i in range(80):
        bus.emit("s", "turn.final", {"i": i})
    assert sink.backlog == 50 and sink.dropped["backlog_full"] == 30
    assert seen.dropped == {"backlog_full": 30}
    other.execute("ROLLBACK")
    assert sink.flush(timeout=10)
    assert [e.data["i"] for e in store.read()] == list(range(50))  # the oldest are kept
    full = [r for r in caplog.records if "backlog is full" in r.getMessage()]
    assert len(full) == 1
    sink.close()


def test_closing_while_the_log_stays_locked_gives_up_and_counts(
        locked: tuple[SQLiteEventStore, sqlite3.Connection]) -> None:
    store, _ = locked
    bus = EventBus()
    seen = Recorder()
    sink = BusLog(bus, store, batch=5, retry_s=0.01, observer=seen)
    for i in range(12):
        bus.emit("s", "turn.final", {"i": i})
    until(lambda: sink.failing)
    sink.close(timeout=0.5)
    until(lambda: not sink._thread.is_alive(), timeout=5)
    assert sink.dropped["shutdown"] == 12 and seen.dropped == {"shutdown": 12}
    assert sink.backlog == 0


def test_a_full_database_holds_events_until_there_is_room(tmp_path: Path) -> None:
    """SQLITE_FULL for real: the store's connection may not grow the file any further."""
    store = SQLiteEventStore(tmp_path / "log.db", project)
    bus = EventBus()
    sink = attach_bus(bus, store, batch=50, retry_s=0.01)
    bus.emit("s", "turn.final", {"i": -1})
    assert sink.flush()
    db = store._db  # max_page_count is a setting of one connection: the store's own
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    for i in range(200):
        bus.emit("s", "turn.final", {"i": i, "text": "a caller's words " * 20})
    until(lambda: sink.failures >= 3)
    assert sink.failing and sink.backlog == 200
    with pytest.raises(LogFullError, match="the disk holding the event log is full"):
        store.append([NewEvent("call:x", "turn.final", {"text": "more words " * 500})])
    db.execute("PRAGMA max_page_count = 1073741823")
    assert sink.flush(timeout=10)
    assert [e.data["i"] for e in store.read()] == list(range(-1, 200))
    sink.close()
    store.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, when this process may mount one (root); skipped otherwise."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the max_page_count test covers SQLITE_FULL)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_holds_events_until_space_is_freed(small_disk: Path) -> None:
    store = SQLiteEventStore(small_disk / "log.db", project)
    store.append([NewEvent("call:x", "turn.final", {"text": "the first words"})])
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL must grow to take more
    bus = EventBus()
    sink = attach_bus(bus, store, batch=50, retry_s=0.01)
    filler = fill(small_disk)
    for i in range(300):
        bus.emit("s", "turn.final", {"i": i, "text": "a caller's words " * 20})
    until(lambda: sink.failures >= 3)
    assert sink.failing and sink.backlog == 300
    filler.unlink()
    assert sink.flush(timeout=10)
    assert [e.data["i"] for e in store.read(stream="call:s")] == list(range(300))
    sink.close()
    store.close()
