"""Early turns (voice.early) as the agents take them: a turn given before the caller's
closing silence has passed carries ``UserTurn.confirmed``. Its tools that act (a booking)
wait for it (orchestration.patterns.hold); a dropped one is put back at the next input
and has booked nothing. Real NLU, flows and stores, as in ``gateway.evaluation.line``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.evaluation.line import Line, make_system
from orchestration.agents.agent import Say, UserTurn


async def early(line: Line, text: str) -> tuple[asyncio.Future[bool], asyncio.Task[str]]:
    """``text`` as an early turn, its reply being streamed (as a session holds it)."""
    line.turns += 1
    confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def reply() -> str:
        said = []
        async for action in line.agent.respond(UserTurn(text, 1000, line.turns,
                                                        confirmed=confirmed)):
            if isinstance(action, Say):
                said.append(action.text)
        return " ".join(said)

    task = asyncio.create_task(reply())
    for _ in range(200):  # until the booking waits for the turn (bounded: 2 s)
        if line.events("tool.held") or task.done():
            break
        await asyncio.sleep(0.01)
    return confirmed, task


def bookings(line: Line) -> list[dict[str, object]]:
    return [e for e in line.events("step.completed") if e.get("tool") == "calendar.book"]


async def offered(tmp_path: Path) -> Line:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.greet()
    assert "Monday at 10 AM, shall I book it?" in await line.say("Book me on Monday at 10 AM.")
    return line


async def test_an_early_yes_books_once_the_turn_is_confirmed(tmp_path: Path) -> None:
    line = await offered(tmp_path)
    confirmed, reply = await early(line, "Yes, please.")
    assert [e["tool"] for e in line.events("tool.held")] == ["calendar.book"]
    assert not reply.done() and not bookings(line)  # nothing booked before the turn ended
    confirmed.set_result(True)
    said = await asyncio.wait_for(reply, 5)
    assert "You're booked for Monday" in said
    assert len(bookings(line)) == 1


async def test_a_dropped_early_turn_is_put_back_and_booked_nothing(tmp_path: Path) -> None:
    line = await offered(tmp_path)
    confirmed, reply = await early(line, "Yes.")
    assert line.events("tool.held") and not bookings(line)
    # the caller went on: the session drops the reply and says so
    confirmed.set_result(False)
    reply.cancel()
    await asyncio.gather(reply, return_exceptions=True)
    assert not bookings(line)  # the held booking never ran
    # the whole sentence comes as the same turn; the dropped half is undone first, so the
    # offer still waits for its answer, and the booking is made once
    line.turns -= 1
    said = await line.say("Yes, that's fine, thanks.")
    assert line.events("agent.rollback") == [{"turn": 2, "superseded": 2, "early": True}]
    assert "You're booked for Monday" in said, said
    assert len(bookings(line)) == 1


async def test_reading_tools_do_not_wait_for_an_early_turn(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.greet()
    confirmed, reply = await early(line, "Book me on Monday at 10 AM.")
    # calendar.check only reads: the offer is made without waiting for the turn
    said = await asyncio.wait_for(reply, 5)
    assert "Monday at 10 AM, shall I book it?" in said
    assert not line.events("tool.held") and not confirmed.done()


async def test_a_note_is_kept_only_for_a_confirmed_early_turn(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.greet()
    dropped, reply = await early(line, "Take a note: call Anna about the budget.")
    # keeping a note acts: the reply ("Noted") waits for it, and so for the turn
    assert [e["tool"] for e in line.events("tool.held")] == ["memory.remember"]
    assert not reply.done() and not line.events("memory.write")
    dropped.set_result(False)  # the caller went on: the note is never kept
    reply.cancel()
    await asyncio.gather(reply, return_exceptions=True)
    line.turns -= 1
    confirmed, reply = await early(line, "Take a note: call Anna about the budget today.")
    confirmed.set_result(True)
    await asyncio.wait_for(reply, 5)
    assert [e["text"] for e in line.events("memory.write") if e["kind"] == "note"] == [
        "Call Anna about the budget today"]


async def test_what_a_flow_keeps_at_its_end_waits_for_an_early_turn(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    for note in ("send the slides to Maria", "call the printer about the banners"):
        await line.say(f"Take a note: {note}")
    assert "Shall I mark them as confirmed?" in await line.say("What are my follow-ups?")
    confirmed, reply = await early(line, "Yes.")
    assert "Confirmed." in await asyncio.wait_for(reply, 5)  # said, not kept yet
    assert not sys_.memory.items("+15005550006", "followups")
    confirmed.set_result(True)
    await asyncio.sleep(0.01)
    assert sys_.memory.items("+15005550006", "followups")[0].text.startswith(
        "Confirmed follow-ups: Send the slides to Maria; Call the printer")
