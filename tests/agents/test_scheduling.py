"""Scheduling dialogues through the Agent protocol: read-back, yes books, no and
corrections change the slot, conflicts get alternatives, bookings persist."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.evaluation.line import Line, make_system
from orchestration.agents.system import AgentSystem
from orchestration.log.events import EventRecorder

System = tuple[AgentSystem, EventRecorder]


@pytest.fixture
def system(tmp_path: Path) -> System:
    return make_system(tmp_path)


async def test_yes_books_after_the_read_back(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    await line.greet()
    said = await line.say("I'd like to book an appointment for Tuesday at three p.m.")
    assert "Tuesday at 3 PM, shall I book it?" in said
    assert sys_.calendar.all() == []  # nothing before the yes
    said = await line.say("Yes, please.")
    assert "You're booked for Tuesday at 3 PM" in said
    booked = sys_.calendar.all()
    assert [(b["day"], b["time"], b["caller"]) for b in booked] == [
        ("2026-12-01", "15:00", "+15005550006")]
    writes = line.events("memory.write")
    assert writes[-1]["kind"] == "booking"
    assert [e["to"] for e in line.events("agent.handoff")] == ["scheduling", "supervisor"]
    tools = [e["tool"] for e in line.events("tool.succeeded")]
    assert tools == ["calendar.check", "calendar.book", "booking.confirm"]  # the saga's steps


async def test_no_does_not_book_and_a_correction_changes_the_slot(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    await line.say("Can I book something tomorrow at 10 am?")
    said = await line.say("No.")
    assert "instead" in said and sys_.calendar.all() == []
    said = await line.say("Friday at eleven")  # tomorrow is Friday
    assert "Tomorrow at 11 AM, shall I book it?" in said
    said = await line.say("No, make it 2 pm.")
    assert "Tomorrow at 2 PM, shall I book it?" in said
    assert sys_.calendar.all() == []
    await line.say("Yes")
    assert [(b["day"], b["time"]) for b in sys_.calendar.all()] == [("2026-11-27", "14:00")]


async def test_decline_leaves_nothing_booked(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    await line.say("Book me on Monday at 9")
    await line.say("no")
    said = await line.say("no thanks")
    assert "haven't booked anything" in said
    assert sys_.calendar.all() == []


async def test_missing_slots_are_asked_for(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    assert "What day" in await line.say("I need an appointment.")
    assert "what time on Tuesday" in await line.say("Tuesday")
    assert "Tuesday at 10 AM, shall I book it?" in await line.say("10 in the morning")


async def test_conflict_offers_alternatives(system: System) -> None:
    sys_, rec = system
    first = Line(sys_, rec, caller="+15550000001")
    await first.say("Book Tuesday at 3 pm")
    await first.say("yes")
    other = Line(sys_, rec, caller="+15550000002")
    said = await other.say("I'd like Tuesday at 3 pm please")
    assert "Tuesday at 3 PM is taken" in said
    assert "I can offer Tuesday at 2:30 PM or Tuesday at 3:30 PM" in said
    said = await other.say("Yes, the first one.")
    assert "Tuesday at 2:30 PM, shall I book it?" in said
    await other.say("yes")
    assert sorted(str(b["time"]) for b in sys_.calendar.all()) == ["14:30", "15:00"]


async def test_closed_hours_and_weekends_are_not_offered(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    said = await line.say("Book Saturday at 10 am")
    assert "taken" in said and "Monday" in said


async def test_reschedule_cancel_and_list(system: System) -> None:
    sys_, rec = system
    line = Line(sys_, rec)
    await line.say("Book Tuesday at 3 pm")
    await line.say("yes")
    assert "next appointment is Tuesday at 3 PM" in await line.say("When is my appointment?")
    said = await line.say("Can I move my appointment to Wednesday at 10?")
    assert "Your appointment is Tuesday at 3 PM" in said
    assert "Wednesday at 10 AM, shall I move it?" in said
    assert "now Wednesday at 10 AM" in await line.say("yes")
    rows = {(b["day"], b["time"]): b["status"] for b in sys_.calendar.all()}
    assert rows == {("2026-12-01", "15:00"): "moved", ("2026-12-02", "10:00"): "booked"}
    assert "Shall I cancel it?" in await line.say("Please cancel my appointment.")
    assert "cancelled" in await line.say("yes")
    assert [b["status"] for b in sys_.calendar.all()] == ["moved", "cancelled"]
    assert "can't find" in await line.say("Do I have any appointments?")


async def test_bookings_persist_across_a_restart(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("Book Tuesday at 3 pm")
    await line.say("yes")
    again, rec2 = make_system(tmp_path)
    assert [(b["day"], b["time"]) for b in again.calendar.all()] == [("2026-12-01", "15:00")]
    later = Line(again, rec2)
    assert "Your next appointment is Tuesday at 3 PM" in await later.greet()
