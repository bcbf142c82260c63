"""``voxgate replay --copy-to`` moves the agents' stores too: a single process's bookings,
tickets, outbox and long-term memory (SQLite) carry on on a replica on PostgreSQL (the
server comes from tests/pg_server.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway.cli.workflow import replay_command
from gateway.evaluation.line import Line, make_system
from orchestration.log.backends import open_store
from orchestration.log.copy_stores import copy_stores
from orchestration.log.store import LogError, NewEvent
from orchestration.log.views import project


def _cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command()(replay_command)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


async def _one_process(data: Path) -> int:
    """A single process's day: Ada books Tuesday at 3 PM, a ticket is queued; returns the
    booking's id."""
    system, recorder = make_system(data)
    line = Line(system, recorder)
    await line.greet()
    await line.say("My name is Ada.")
    await line.say("Book an appointment on Tuesday at 3 pm.")
    assert "You're booked for Tuesday at 3 PM" in await line.say("Yes, please.")
    system.tickets.add("+15005550006", "billing", "double charge", "queued", 1.0)
    [booking] = system.calendar.all()
    system.close()
    log = open_store(data / "events.db", project)  # what --copy-to starts from
    log.append([NewEvent("wf:a", "workflow.started", {"name": "x"})])
    log.close()
    return int(str(booking["id"]))


async def test_bookings_tickets_outbox_and_memory_move_to_postgresql(
        pg_url: str, tmp_path: Path) -> None:
    booked = await _one_process(tmp_path)
    code, out, err = _cli("--data-dir", str(tmp_path), "--copy-to", pg_url)
    assert code == 0, err
    assert json.loads(out)["stores"] == {
        "bookings": 1, "tickets": 1, "ops_status": 0, "ops_alerts": 0, "outbox": 1,
        "callers": 1, "items": 1}
    replica, recorder = make_system(tmp_path / "replica", database_url=pg_url)
    greeting = await Line(replica, recorder).greet()
    assert "Welcome back, Ada" in greeting and "Tuesday at 3 PM" in greeting, greeting
    assert not replica.calendar.is_free("2026-12-01", "15:00")
    with pytest.raises(ValueError, match="not free"):
        replica.calendar.book("2026-12-01", "15:00", "+15550100009", None, 2.0)
    # ids made on the replica follow the copied ones (PostgreSQL's sequences leave gaps:
    # the refused attempt above took one), so no new booking reuses a copied ref
    assert replica.calendar.book("2026-12-02", "10:00", None, None, 2.0) > booked
    assert replica.tickets.add(None, "general", "x", "open", 3.0) == "T1002"
    assert replica.outbox is not None
    assert [m["key"] for m in replica.outbox.messages()] == [f"booking-{booked}"]
    replica.close()
    with pytest.raises(LogError, match="table bookings already holds rows; copy into an "
                                       "empty database"):
        copy_stores(tmp_path, pg_url)


def test_an_older_calendar_without_keys_is_copied(pg_url: str, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "agents.db") as old:  # before idempotency keys
        old.execute("CREATE TABLE bookings (id INTEGER PRIMARY KEY, caller TEXT, name TEXT, "
                    "day TEXT NOT NULL, time TEXT NOT NULL, status TEXT NOT NULL, "
                    "created REAL NOT NULL)")
        old.execute("INSERT INTO bookings VALUES (7, '+1555', NULL, '2026-12-01', '09:00', "
                    "'booked', 1.0)")
    assert copy_stores(tmp_path, pg_url)["bookings"] == 1
