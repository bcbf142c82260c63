"""The event store contract, run against both stores, and the SQLite log's faults."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import (
    ConcurrentWriteError,
    EventRejected,
    EventStore,
    LogBusyError,
    LogCorruptedError,
    LogFullError,
    MemoryEventStore,
    NewEvent,
    StoredEvent,
    View,
)
from orchestration.log.views import project

ROOT = Path(__file__).resolve().parents[2]


def rejecting(view: View | None, event: StoredEvent) -> View | None:
    """The real projection, except that it breaks on one event type."""
    if event.type == "breaks.projection":
        raise KeyError("state")
    return project(view, event)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s: EventStore
    if request.param == "memory":
        s = MemoryEventStore(rejecting, clock=lambda: 5.0)
    else:
        s = SQLiteEventStore(tmp_path / "log.db", rejecting, clock=lambda: 5.0)
    yield s
    s.close()


def test_append_assigns_seq_versions_and_keeps_order(store: EventStore) -> None:
    out = store.append([
        NewEvent("wf:a", "workflow.started", {"name": "x", "input": {"k": 1}}),
        NewEvent("call:c1", "call.started", {"caller": "+1"}),
        NewEvent("wf:a", "state.entered", {"state": "s1"}, ts=7.5),
    ])
    assert [(e.seq, e.stream, e.version) for e in out] == [
        (1, "wf:a", 1), (2, "call:c1", 1), (3, "wf:a", 2)]
    assert out[0].ts == 5.0 and out[2].ts == 7.5
    assert [e.type for e in store.read()] == ["workflow.started", "call.started", "state.entered"]
    assert [e.seq for e in store.read(after=1)] == [2, 3]
    assert [e.seq for e in store.read(stream="wf:a")] == [1, 3]
    assert [e.seq for e in store.read(limit=1)] == [1]
    assert store.last_seq() == 3 and store.version("wf:a") == 2 and store.version("nope") == 0


def test_views_are_kept_with_the_append(store: EventStore) -> None:
    store.append([NewEvent("wf:a", "workflow.started", {"name": "x", "input": {}}),
                  NewEvent("wf:a", "state.entered", {"state": "s1"})])
    view = store.view("wf:a")
    assert view is not None and view["state"] == "s1" and view["status"] == "running"
    assert view["events"] == 2 and view["last_seq"] == 2
    assert set(store.views("wf:")) == {"wf:a"}
    assert store.view("other:x") is None  # streams without a projection have no view


def test_expected_version_rejects_a_stale_writer_and_writes_nothing(store: EventStore) -> None:
    store.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    with pytest.raises(ConcurrentWriteError) as err:
        store.append([NewEvent("wf:a", "state.entered", {"state": "b"}),
                      NewEvent("wf:b", "workflow.started", {"name": "y"})], {"wf:a": 0})
    assert str(err.value) == ("stream 'wf:a' was changed by another writer: expected version 0, "
                              "found 1; reload it and try again (nothing was written)")
    assert store.last_seq() == 1 and store.version("wf:b") == 0


def test_values_json_cannot_hold_are_kept_readable(store: EventStore) -> None:
    [e] = store.append([NewEvent("call:c", "audio.chunk", {"pcm": b"\x00" * 320,
                                                            "tags": ("a", "b")})])
    assert e.data == {"pcm": {"bytes": 320}, "tags": ["a", "b"]}


class NoRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("data", "why"),
    [({"x": float("nan")}, "cannot be stored as JSON: ValueError"),
     ({"o": NoRepr()}, "cannot be stored as JSON: RuntimeError: no repr"),
     ({"pcm": "x" * 1_100_000}, "over the 1048576 byte limit"),
     ({}, "breaks its view's projection: KeyError")],
)
def test_an_event_the_log_cannot_take_is_rejected_and_nothing_is_written(
        store: EventStore, data: dict[str, object], why: str) -> None:
    store.append([NewEvent("call:c", "turn.final", {"i": 0})])
    kind = "breaks.projection" if not data else "turn.final"
    with pytest.raises(EventRejected, match=why) as err:
        store.append([NewEvent("call:c", "turn.final", {"i": 1}), NewEvent("call:c", kind, data)])
    assert err.value.index == 1 and str(err.value).startswith("event 1 (")
    assert store.last_seq() == 1 and store.version("call:c") == 1
    view = store.view("call:c")
    assert view is not None and view["events"] == 1  # the view is as it was too
    store.append([NewEvent("call:c", "turn.final", {"i": 2})])  # and the log goes on
    assert [e.data["i"] for e in store.read()] == [0, 2]


def test_a_full_database_says_so_and_writes_again_when_there_is_room(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "log.db", project)
    s.append([NewEvent("call:c", "turn.final", {"i": 0})])
    pages = s._db.execute("PRAGMA page_count").fetchone()[0]
    s._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL for real, on this connection
    big = [NewEvent("call:c", "turn.final", {"text": "words " * 2000, "i": i}) for i in range(5)]
    with pytest.raises(LogFullError, match="the disk holding the event log is full"):
        s.append(big)
    assert s.last_seq() == 1
    s._db.execute("PRAGMA max_page_count = 1073741823")
    s.append(big)
    assert s.last_seq() == 6
    s.close()


def test_a_log_locked_by_another_connection_is_busy(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "log.db", project, busy_timeout_s=0.05)
    other = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(LogBusyError, match="is locked by another writer"):
        s.append([NewEvent("call:c", "turn.final", {})])
    other.execute("ROLLBACK")
    s.append([NewEvent("call:c", "turn.final", {})])
    assert s.last_seq() == 1
    other.close()
    s.close()


def test_sqlite_log_survives_reopen(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "log.db", project)
    s.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    s.close()
    s = SQLiteEventStore(tmp_path / "log.db", project)
    assert s.last_seq() == 1 and s.view("wf:a") is not None
    wal = s._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert wal == "wal"
    s.close()


def test_observers_see_committed_batches_only_and_cannot_break_a_write(tmp_path: Path) -> None:
    s = SQLiteEventStore(tmp_path / "log.db", project)
    seen: list[list[str]] = []

    def broken(_events: object) -> None:
        raise RuntimeError("observer bug")

    s.observe(broken)
    stop = s.observe(lambda events: seen.append([e.type for e in events]))
    s.append([NewEvent("wf:a", "workflow.started", {"name": "x"}),
              NewEvent("wf:a", "state.entered", {"state": "s"})])
    with pytest.raises(ConcurrentWriteError):
        s.append([NewEvent("wf:a", "state.entered", {"state": "t"})], expected={"wf:a": 0})
    stop()
    s.append([NewEvent("wf:a", "workflow.completed", {})])
    assert seen == [["workflow.started", "state.entered"]]  # not the rejected batch
    assert s.last_seq() == 3
    s.close()


def test_a_file_that_is_not_a_log_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(LogCorruptedError, match=r"event log .*log.db is damaged .*salvage"):
        SQLiteEventStore(path, project)


def _filled(path: Path, n: int = 3000) -> None:
    s = SQLiteEventStore(path, project)
    for i in range(0, n, 500):
        s.append([NewEvent(f"call:c{j % 7}", "turn.final", {"text": "x" * 50, "i": j})
                  for j in range(i, i + 500)])
    s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()


def test_a_truncated_log_is_reported_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _filled(path)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(LogCorruptedError, match="is damaged"):
        s = SQLiteEventStore(path, project)
        list(s.read())


def test_a_flipped_byte_inside_an_event_fails_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _filled(path, 10)
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET data = replace(data, 'xxx', 'xyx') WHERE seq = 4")
    db.commit()
    db.close()
    s = SQLiteEventStore(path, project)
    with pytest.raises(LogCorruptedError, match="event seq 4 fails its checksum"):
        list(s.read())
    s.close()


WRITER = """
import sys
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import NewEvent
from orchestration.log.views import project
s = SQLiteEventStore(sys.argv[1], project)
for i in range(int(sys.argv[3])):
    s.append([NewEvent("call:" + sys.argv[2], "tick", {"i": i}) for _ in range(5)])
s.close()
"""


def test_two_processes_writing_one_log_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    SQLiteEventStore(path, project).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "200"], cwd=ROOT)
        for name in ("p1", "p2")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    s = SQLiteEventStore(path, project)
    events = list(s.read())
    assert [e.seq for e in events] == list(range(1, 2001))
    for name in ("p1", "p2"):
        mine = [e for e in events if e.stream == f"call:{name}"]
        assert [e.version for e in mine] == list(range(1, 1001))
        view = s.view(f"call:{name}")
        assert view is not None and view["events"] == 1000
    s.close()


def test_second_process_on_one_stream_gets_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a = SQLiteEventStore(path, project)
    b = SQLiteEventStore(path, project)
    a.append([NewEvent("wf:x", "workflow.started", {"name": "n"})], {"wf:x": 0})
    with pytest.raises(ConcurrentWriteError):
        b.append([NewEvent("wf:x", "workflow.started", {"name": "n"})], {"wf:x": 0})
    assert [e.seq for e in b.read()] == [1]
    a.close()
    b.close()


def test_two_writers_on_one_stream_keep_its_view_whole(tmp_path: Path) -> None:
    # each store caches the views it wrote; a stream moved by the other must be re-read
    a = SQLiteEventStore(tmp_path / "log.db", project)
    b = SQLiteEventStore(tmp_path / "log.db", project)
    for i in range(6):
        (a if i % 2 else b).append([NewEvent("call:shared", "turn.final", {"i": i})])
    for store in (a, b):
        view = store.view("call:shared")
        assert view is not None and view["events"] == 6 and view["last_seq"] == 6
    a.close()
    b.close()
