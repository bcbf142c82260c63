"""One set of event store tests, run against SQLite and against a real PostgreSQL server
(started by tests/pg_server.py), plus what only PostgreSQL has: migrations, the pool, and
several nodes appending to one stream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orchestration.log.backends import open_store
from orchestration.log.pg_migrations import LATEST
from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.store import (
    ConcurrentWriteError,
    EventStore,
    LogBusyError,
    LogError,
    NewEvent,
    StoredEvent,
)
from orchestration.log.views import project
from tests.orchestration.test_store import (  # noqa: F401  the contract, on both backends
    rejecting,
    test_an_event_the_log_cannot_take_is_rejected_and_nothing_is_written,
    test_append_assigns_seq_versions_and_keeps_order,
    test_expected_version_rejects_a_stale_writer_and_writes_nothing,
    test_values_json_cannot_hold_are_kept_readable,
    test_views_are_kept_with_the_append,
)
from tests.pg_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty log lives: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(location: str) -> Iterator[EventStore]:
    s = open_store(location, rejecting, clock=lambda: 5.0)
    yield s
    s.close()


def test_a_log_survives_reopen_with_its_views(location: str) -> None:
    s = open_store(location, project)
    s.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    s.close()
    s = open_store(location, project)
    view = s.view("wf:a")
    assert s.last_seq() == 1 and view is not None and view["status"] == "running"
    s.close()


def test_observers_see_committed_batches_only(location: str) -> None:
    s = open_store(location, project)
    seen: list[list[str]] = []

    def broken(_events: list[StoredEvent]) -> None:
        raise RuntimeError("observer bug")

    s.observe(broken)
    stop = s.observe(lambda events: seen.append([e.type for e in events]))
    s.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    with pytest.raises(ConcurrentWriteError):
        s.append([NewEvent("wf:a", "state.entered", {"state": "t"})], expected={"wf:a": 0})
    stop()
    s.append([NewEvent("wf:a", "workflow.completed", {})])
    assert seen == [["workflow.started"]] and s.last_seq() == 2
    s.close()


def test_two_stores_on_one_log_conflict_and_keep_views_whole(location: str) -> None:
    # two stores = two connections (two nodes); each caches the views it wrote
    a, b = open_store(location, project), open_store(location, project)
    a.append([NewEvent("wf:x", "workflow.started", {"name": "n"})], {"wf:x": 0})
    with pytest.raises(ConcurrentWriteError):
        b.append([NewEvent("wf:x", "workflow.started", {"name": "n"})], {"wf:x": 0})
    for i in range(6):
        (a if i % 2 else b).append([NewEvent("call:shared", "turn.final", {"i": i})])
    for s in (a, b):
        view = s.view("call:shared")
        assert view is not None and view["events"] == 6 and view["last_seq"] == 7
        s.close()


def test_purge_and_replace_views(location: str) -> None:
    s = open_store(location, project)
    s.append([NewEvent("call:old", "turn.final", {}, ts=1.0),
              NewEvent("call:new", "turn.final", {}, ts=9.0),
              NewEvent("wf:a", "workflow.started", {"name": "x"}, ts=1.0)])
    assert s.purge("call:", before_ts=5.0) == 1
    assert [e.stream for e in s.read()] == ["call:new", "wf:a"]
    s.replace_views({"wf:a": {"state": "rebuilt"}})
    assert s.view("wf:a") == {"state": "rebuilt"} and s.view("call:new") is None
    s.close()


WRITER = """
import sys
from orchestration.log.backends import open_store
from orchestration.log.store import ConcurrentWriteError, NewEvent
from orchestration.log.views import project
location, name, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = open_store(location, project)
import os, time
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:  # start together
    time.sleep(0.001)
conflicts = 0
for i in range(n):
    while True:
        seen = s.version("call:shared")
        try:
            s.append([NewEvent("call:shared", "tick", {"writer": name, "i": i, "after": seen})],
                     {"call:shared": seen})
            break
        except ConcurrentWriteError:
            conflicts += 1
print(conflicts)
s.close()
"""


def test_two_processes_appending_to_one_stream_lose_and_duplicate_nothing(
        location: str, tmp_path: Path) -> None:
    open_store(location, project).close()  # schema in place before the race
    go, n = tmp_path / "go", 300
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, location, name, str(n), str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for name in ("p1", "p2")]
    go.touch()
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    s = open_store(location, project)
    events = list(s.read(stream="call:shared"))
    assert [e.version for e in events] == list(range(1, 2 * n + 1))  # gapless 1..N
    # each event was appended at exactly the version its writer had read: a stale writer
    # was refused (ConcurrentWriteError), never let through
    assert all(e.data["after"] == e.version - 1 for e in events)
    written = sorted((e.data["writer"], e.data["i"]) for e in events)
    assert written == sorted((w, i) for w in ("p1", "p2") for i in range(n))  # each once
    view = s.view("call:shared")
    assert view is not None and view["events"] == 2 * n
    s.close()
    print("conflicts retried:", [int(o) for o in outs])


# --- PostgreSQL only ---------------------------------------------------------------


def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT version FROM schema_version ORDER BY version")]


OPENER = """
import sys
from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.views import project
PostgresEventStore(sys.argv[1], project).close()
"""


def test_migrations_run_once_even_when_processes_start_together(pg_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, pg_url], cwd=ROOT)
             for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert _versions(pg_url) == list(range(1, LATEST + 1))
    s = PostgresEventStore(pg_url, project)  # and again: idempotent
    s.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    s.close()
    assert _versions(pg_url) == list(range(1, LATEST + 1))


def test_a_database_migrated_by_a_newer_voxgate_is_refused(pg_url: str) -> None:
    PostgresEventStore(pg_url, project).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'from the future', 0)")
    with pytest.raises(LogError, match="schema is at version 999, newer than this voxgate"):
        PostgresEventStore(pg_url, project)


def test_an_unreachable_database_is_a_clear_error(pg_server: PostgresServer) -> None:
    url = pg_server.url("postgres").replace(str(pg_server.port), "1")
    with pytest.raises(LogError, match=r"cannot reach the event log's database "
                                       r"postgresql://postgres@127.0.0.1:1/postgres"):
        PostgresEventStore(url, project, connect_timeout_s=2)


def test_a_log_locked_by_another_node_is_busy_then_writable(pg_url: str) -> None:
    s = PostgresEventStore(pg_url, project, busy_timeout_s=0.2)
    with psycopg.connect(pg_url) as other:
        other.execute("SELECT seq FROM log_head FOR UPDATE")  # another node mid-append
        with pytest.raises(LogBusyError, match="is locked by another writer"):
            s.append([NewEvent("call:c", "turn.final", {})])
    s.append([NewEvent("call:c", "turn.final", {})])
    assert s.last_seq() == 1 and s.version("call:c") == 1
    s.close()


def test_a_text_postgresql_cannot_hold_is_rejected(pg_url: str) -> None:
    from orchestration.log.store import EventRejected

    s = PostgresEventStore(pg_url, project)
    with pytest.raises(EventRejected):
        s.append([NewEvent("call:c\x00", "turn.final", {})])
    s.append([NewEvent("call:c", "turn.final", {"text": "nul \x00 inside JSON is escaped"})])
    assert [e.data for e in s.read()] == [{"text": "nul \x00 inside JSON is escaped"}]
    s.close()


def test_connections_dropped_by_the_server_are_replaced(pg_url: str) -> None:
    # a failover, a restart or an idle timeout: the pool's connections are dead
    s = PostgresEventStore(pg_url, project, pool_size=2)
    s.append([NewEvent("call:c", "turn.final", {"i": 0})])
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid()").fetchone()
    assert killed is not None and killed[0] >= 1
    s.append([NewEvent("call:c", "turn.final", {"i": 1})])
    assert [e.data["i"] for e in s.read()] == [0, 1] and s.version("call:c") == 2
    s.close()
