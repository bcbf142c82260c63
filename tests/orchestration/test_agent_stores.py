"""The agents' stores, one set of tests on both backends: a SQLite file and a real
PostgreSQL server (tests/pg_server.py; VOXGATE_SKIP_PG=1 skips it). Bookings (book,
release, conflict, idempotent retry, two processes booking the same slots at once),
tickets, ops status and alerts, the confirmation outbox; then the agents and a gateway
app with a database URL, whose bookings land in PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.line import Line, make_system
from orchestration.agents.ops import OpsConfig, OpsMonitor
from orchestration.agents.scheduling import Calendar
from orchestration.agents.support import Tickets
from orchestration.agents.system import AgentSystem
from orchestration.log.pg_migrations import LATEST
from orchestration.log.tables import Tables, open_tables
from orchestration.workflow.confirmation import LocalOutbox
from voice.ports import CallInfo, Say, UserTurn

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 11, 26)  # a Thursday: "Tuesday" is 2026-12-01


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where fresh, empty tables live: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "agents.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def tables(location: str) -> Iterator[Tables]:
    t = open_tables(location)
    yield t
    t.close()


def test_book_conflict_idempotent_retry_release_and_move(tables: Tables) -> None:
    cal = Calendar(tables, today=lambda: TODAY)
    first = cal.book("2026-12-01", "15:00", "+1555", "Ada", 1.0, key="call-a/book")
    assert cal.book("2026-12-01", "15:00", "+1555", "Ada", 2.0, key="call-a/book") == first
    with pytest.raises(ValueError, match="2026-12-01 15:00 is not free"):
        cal.book("2026-12-01", "15:00", "+1666", None, 3.0, key="call-b/book")
    with pytest.raises(ValueError, match="is not free"):  # before opening time
        cal.book("2026-12-01", "08:00", "+1666", None, 3.0)
    assert not cal.is_free("2026-12-01", "15:00") and cal.is_free("2026-12-01", "15:30")
    assert cal.alternatives("2026-12-01", "15:00") == [("2026-12-01", "14:30"),
                                                      ("2026-12-01", "15:30")]
    assert cal.upcoming("+1555") == [(first, "2026-12-01", "15:00")]
    assert cal.set_status(first, "released") and not cal.set_status(first, "released")
    assert cal.is_free("2026-12-01", "15:00")
    again = cal.book("2026-12-01", "15:00", "+1555", "Ada", 4.0, key="call-a/book")
    assert again != first  # a released booking is not given back: booked anew
    moved = cal.move(again, "2026-12-02", "10:00", 5.0)
    assert cal.get(again) == ("2026-12-01", "15:00", "moved")
    assert [(b["id"], b["day"], b["time"], b["status"]) for b in cal.all()] == [
        (first, "2026-12-01", "15:00", "released"), (again, "2026-12-01", "15:00", "moved"),
        (moved, "2026-12-02", "10:00", "booked")]


def test_two_replicas_share_one_calendar(location: str) -> None:
    one, two = open_tables(location), open_tables(location)
    a, b = Calendar(one, today=lambda: TODAY), Calendar(two, today=lambda: TODAY)
    booked = a.book("2026-12-01", "09:00", "+1555", None, 1.0, key="k")
    assert not b.is_free("2026-12-01", "09:00")
    assert b.book("2026-12-01", "09:00", "+1555", None, 2.0, key="k") == booked
    with pytest.raises(ValueError, match="not free"):
        b.book("2026-12-01", "09:00", "+1666", None, 2.0)
    one.close()
    two.close()


def test_tickets_are_numbered_once_across_replicas(location: str) -> None:
    one, two = open_tables(location), open_tables(location)
    assert Tickets(one).add("+1555", "billing", "double charge", "open", 1.0) == "T1001"
    assert Tickets(two).add(None, "connectivity", "no line", "queued", 2.0) == "T1002"
    assert Tickets(two).add("+1555", "general", "x", "open", 3.0, ref="HD-77") == "HD-77"
    assert [(t["ref"], t["category"], t["status"]) for t in Tickets(one).all()] == [
        ("T1001", "billing", "open"), ("T1002", "connectivity", "queued"),
        ("HD-77", "general", "open")]
    one.close()
    two.close()


async def test_ops_readings_and_alerts_are_kept_for_every_replica(
        location: str, tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"payments": {"status": "ok", "latency_ms": 900}}))
    config = OpsConfig.model_validate({
        "services": {"payments": {}}, "status_file": str(status),
        "rules": [{"metric": "latency_ms", "op": ">", "value": 500, "unit": "ms"}]})
    one, two = open_tables(location), open_tables(location)
    probed = await OpsMonitor(config, one, clock=lambda: 100.0).probe("payments")
    assert (probed.status, probed.metrics) == ("up", {"latency_ms": 900.0})
    status.write_text(json.dumps({"payments": {"status": "down", "latency_ms": 10}}))
    await OpsMonitor(config, one, clock=lambda: 110.0).probe("payments")  # replaces the first
    other = OpsMonitor(config, two, clock=lambda: 130.0)
    cached = other.cached("payments")
    assert (cached.status, cached.age_s, cached.metrics) == ("down", 20.0, {"latency_ms": 10.0})
    [alert] = other.recorded_alerts()
    assert (alert["service"], alert["metric"], alert["value"]) == ("payments", "latency_ms",
                                                                   "900.0")
    one.close()
    two.close()


def test_the_outbox_keeps_one_message_per_key_across_replicas(location: str) -> None:
    one, two = open_tables(location), open_tables(location)
    first = LocalOutbox(one, clock=lambda: 5.0).send("+1555", "Booked.", "c1/s/confirm")
    assert LocalOutbox(two).send("+1555", "Booked.", "c1/s/confirm") == first
    assert LocalOutbox(two).send("+1555", "Moved.", "c2/s/confirm") != first
    assert [(m["key"], m["text"]) for m in LocalOutbox(one).messages()] == [
        ("c1/s/confirm", "Booked."), ("c2/s/confirm", "Moved.")]
    one.close()
    two.close()


# two OS processes book the same slots at once. First each with its own key (two callers
# wanting one slot): each slot is booked once, by one of them. Then with a shared key (one
# booking step run on two nodes at once, as after a takeover): both get the same booking.
BOOKER = """
import json, os, random, sys, time
from datetime import date
from orchestration.agents.scheduling import Calendar
location, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
cal = Calendar(location, today=lambda: date(2026, 11, 26))
cal.all()  # connected
open(go + "." + name, "w").close()  # ready
days = ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04", "2026-12-07", "2026-12-08"]
slots = [(d, f"{h:02d}:{m:02d}") for d in days for h in range(9, 17) for m in (0, 30)]
order = list(enumerate(slots))
random.Random(name).shuffle(order)  # each its own order: they meet all over the book
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:  # start together
    time.sleep(0.001)
out = {"own": {}, "shared": {}}
for i, (day, hhmm) in order:
    shared = i % 2 == 1
    key = f"shared/{day}/{hhmm}" if shared else f"{name}/{day}/{hhmm}"
    try:
        ident = cal.book(day, hhmm, name, None, time.time(), key=key)
    except ValueError:
        ident = None
    out["shared" if shared else "own"][f"{day} {hhmm}"] = ident
print(json.dumps(out))
"""


def test_two_processes_booking_the_same_slots_book_each_once(
        location: str, tmp_path: Path) -> None:
    Calendar(location).all()  # the schema in place before the race
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BOOKER, location, name, str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for name in ("p1", "p2")]
    ready = [Path(f"{go}.{name}") for name in ("p1", "p2")]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # both imported and connected: then they start at once
    go.touch()
    p1, p2 = (json.loads(p.communicate(timeout=120)[0]) for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    rows = Calendar(location).all()
    assert len(rows) == 96 and all(r["status"] == "booked" for r in rows)
    by_slot = {f"{r['day']} {r['time']}": r for r in rows}
    assert len(by_slot) == 96  # one booking per slot
    for slot, mine in p1["own"].items():  # exactly one of the two callers got it
        theirs = p2["own"][slot]
        assert (mine is None) != (theirs is None), slot
        winner = "p1" if mine is not None else "p2"
        assert by_slot[slot]["caller"] == winner and by_slot[slot]["id"] in (mine, theirs)
    for slot, mine in p1["shared"].items():  # the same key: the same booking for both
        assert mine is not None and mine == p2["shared"][slot] == by_slot[slot]["id"], slot
    won = sum(v is not None for v in p1["own"].values())
    print(f"p1 won {won} of 48 contested slots, p2 {48 - won}")


def _pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql.encode())]


def _waiting_on_a_lock(url: str) -> bool:
    rows = _pg_rows(url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                         "AND datname = current_database()")
    return bool(rows[0][0])


@pytest.mark.parametrize(("ending", "key", "outcome"), [
    ("commit", "step-1", "theirs"), ("commit", "someone-else", "not free"),
    ("rollback", "step-1", "mine")])
def test_a_booking_racing_an_uncommitted_one_on_another_node_gets_its_outcome(
        pg_url: str, ending: str, key: str, outcome: str) -> None:
    """The exact window two processes rarely hit together: another node has inserted the
    slot's booking and not committed yet. This node's booking waits on the unique index,
    then gets the other's booking (same key), "not free" (another key), or the slot (the
    other rolled back)."""
    tables = open_tables(pg_url)
    cal = Calendar(tables, today=lambda: TODAY)
    result: dict[str, Any] = {}

    def book() -> None:
        try:
            result["id"] = cal.book("2026-12-01", "11:00", "+1888", None, 1.0, key=key)
        except ValueError as exc:
            result["error"] = str(exc)

    with psycopg.connect(pg_url) as other:
        [(theirs,)] = other.execute(
            "INSERT INTO bookings (caller, day, time, status, created, key) VALUES "
            "('+1777', '2026-12-01', '11:00', 'booked', 0, 'step-1') RETURNING id").fetchall()
        booker = threading.Thread(target=book)
        booker.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(pg_url) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waiting_on_a_lock(pg_url) and not result  # it waits for the other node
        other.commit() if ending == "commit" else other.rollback()
        booker.join(30)
    rows = [(b["id"], b["caller"]) for b in cal.all()]
    tables.close()
    if outcome == "theirs":
        assert result == {"id": theirs} and rows == [(theirs, "+1777")]
    elif outcome == "not free":
        assert result == {"error": "2026-12-01 11:00 is not free"} and rows == [(theirs, "+1777")]
    else:
        assert rows == [(result["id"], "+1888")]


# --- the agents and the gateway on PostgreSQL ---------------------------------------


async def test_the_agents_keep_bookings_memory_and_outbox_in_postgresql(
        pg_url: str, tmp_path: Path) -> None:
    system, recorder = make_system(tmp_path, database_url=pg_url)
    line = Line(system, recorder)
    await line.greet()
    await line.say("My name is Ada.")
    assert "shall I book it?" in await line.say("Book an appointment on Tuesday at 3 pm.")
    assert "You're booked for Tuesday at 3 PM" in await line.say("Yes, please.")
    system.close()
    [(ident, *booking)] = _pg_rows(pg_url, "SELECT id, day, time, caller, status FROM bookings")
    assert booking == ["2026-12-01", "15:00", "+15005550006", "booked"]
    # the confirmation, named after the booking
    assert _pg_rows(pg_url, "SELECT key, recipient FROM outbox") == [
        (f"booking-{ident}", "+15005550006")]
    assert _pg_rows(pg_url, "SELECT name FROM callers") == [("Ada",)]
    assert _pg_rows(pg_url, "SELECT kind FROM items ORDER BY id") == [("booking",)]
    assert _pg_rows(pg_url, "SELECT max(version) FROM schema_version") == [(LATEST,)]
    # nothing of it in the data directory
    assert not {"agents.db", "memory.db", "outbox.db"} & set(os.listdir(tmp_path))
    # another replica's agents know the caller and the slot
    again, rec2 = make_system(tmp_path / "other", database_url=pg_url)
    greeting = await Line(again, rec2).greet()
    assert "Welcome back, Ada" in greeting and "Tuesday at 3 PM" in greeting, greeting
    assert not again.calendar.is_free("2026-12-01", "15:00")
    again.close()


def _agent_system(app: Any) -> AgentSystem:
    """The AgentSystem create_app built: the plug (gateway/agents.py) closes over its
    bound ``agent`` method."""
    [cell] = app.state.runtime.agent_factory.__closure__
    system = cell.cell_contents.__self__
    assert isinstance(system, AgentSystem)
    return system


async def test_a_gateway_with_a_database_url_books_into_postgresql(
        pg_url: str, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=pg_url))
    system = _agent_system(app)
    try:
        agent = app.state.runtime.agent_factory(CallInfo("s1", "twilio", "+15005550007"))
        said: list[str] = []
        for i, text in enumerate(["Book an appointment on Monday at 10 am.", "Yes."]):
            said += [a.text async for a in agent.respond(UserTurn(text, 900, i))
                     if isinstance(a, Say)]
    finally:
        system.close()
    assert any("You're booked for" in s for s in said), said
    [(day, hhmm, caller)] = _pg_rows(pg_url, "SELECT day, time, caller FROM bookings")
    assert (hhmm, caller) == ("10:00", "+15005550007")
    assert date.fromisoformat(day).weekday() == 0
