"""A booking is a saga: the slot is reserved (``calendar.book``), then confirmed to the
caller (``booking.confirm``, a local outbox by default), and released again
(``calendar.release``, the compensation) when the confirmation cannot be sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.evaluation.line import TODAY, Line, make_system
from orchestration.agents.scheduling import Calendar

ASK = "I'd like to book an appointment for Tuesday at three p.m."


class FailingSender:
    """A confirmation channel that refuses every message (a fake, by name)."""

    name = "failing-sms"

    def __init__(self) -> None:
        self.tried: list[str] = []

    def send(self, to: str, text: str, key: str) -> str:
        self.tried.append(key)
        raise RuntimeError("the SMS gateway refused the message")


async def test_a_booking_is_confirmed_through_the_outbox(tmp_path: Path) -> None:
    system, rec = make_system(tmp_path)
    line = Line(system, rec)
    await line.greet()
    assert "Tuesday at 3 PM, shall I book it?" in await line.say(ASK)
    assert "You're booked for Tuesday at 3 PM" in await line.say("Yes, please.")
    [booking] = system.calendar.all()
    assert (booking["day"], booking["time"], booking["status"]) == ("2026-12-01", "15:00",
                                                                     "booked")
    assert system.outbox is not None
    [message] = system.outbox.messages()
    assert message["to"] == "+15005550006" and message["key"] == f"booking-{booking['id']}"
    assert message["text"] == "Your appointment on 2026-12-01 at 15:00 is booked."
    assert line.events("saga.compensating") == []
    system.close()


async def test_a_confirmation_that_fails_releases_the_slot(tmp_path: Path) -> None:
    sender = FailingSender()
    system, rec = make_system(tmp_path, sender=sender)
    line = Line(system, rec)
    await line.greet()
    assert "Tuesday at 3 PM, shall I book it?" in await line.say(ASK)
    said = await line.say("Yes, please.")
    assert "booked for" not in said
    assert "couldn't confirm" in said and "Shall I put you through to a colleague?" in said
    assert sender.tried == ["booking-1"]
    # reserved, then released by the compensation: the slot is free again
    assert [(b["day"], b["time"], b["status"]) for b in system.calendar.all()] == [
        ("2026-12-01", "15:00", "released")]
    assert system.calendar.is_free("2026-12-01", "15:00")
    # the compensation, in the call's events
    [compensating] = line.events("saga.compensating")
    assert compensating["step"] == "confirm_booking" and "refused" in compensating["error"]
    assert [e["step"] for e in line.events("compensation.completed")] == ["book"]
    assert [e["tool"] for e in line.events("policy.allowed")][-1] == "calendar.release"
    # the caller may still get a person, or leave it
    assert "Okay, I haven't booked anything." in await line.say("No, thanks.")
    system.close()


def test_the_same_key_books_once_and_an_older_book_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "agents.db"
    with sqlite3.connect(db) as old:  # the table as it was before idempotency keys
        old.execute("CREATE TABLE bookings (id INTEGER PRIMARY KEY, caller TEXT, name TEXT, "
                    "day TEXT NOT NULL, time TEXT NOT NULL, status TEXT NOT NULL, "
                    "created REAL NOT NULL)")
    cal = Calendar(db, today=lambda: TODAY)
    first = cal.book("2026-12-01", "15:00", "+1555", None, 1.0, key="call-a/scheduling-1")
    again = cal.book("2026-12-01", "15:00", "+1555", None, 2.0, key="call-a/scheduling-1")
    assert again == first and len(cal.all()) == 1
    with pytest.raises(ValueError, match="is not free"):  # another run: the slot is taken
        cal.book("2026-12-01", "15:00", "+1666", None, 3.0, key="call-b/scheduling-1")
    assert cal.set_status(first, "released")
    # a released booking is not given back: the same key books the slot anew
    assert cal.book("2026-12-01", "15:00", "+1555", None, 4.0, key="call-a/scheduling-1") \
        != first
