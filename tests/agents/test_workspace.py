"""Workspace dialogues: notes in long-term memory (never a secret), read-back in a later
call, meeting summary, follow-ups listed and confirmed."""

from __future__ import annotations

from pathlib import Path

from gateway.evaluation.line import Line, make_system


async def test_note_taken_then_read_back_in_the_next_call(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    first = Line(sys_, rec)
    await first.greet()
    assert "Noted: Call Anna about the budget." in await first.say(
        "Take a note: call Anna about the budget.")
    assert first.events("memory.write")[-1] == {
        "kind": "note", "id": 1, "text": "Call Anna about the budget"}
    second = Line(sys_, rec)
    await second.greet()
    said = await second.say("Read me my notes.")
    assert "Call Anna about the budget" in said
    assert any(e["what"] == "note" and e["found"] for e in second.events("memory.read"))


async def test_dictated_note_and_secret_refused(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "What should the note say?" in await line.say("Take a note.")
    assert "Noted: Order new laptops." in await line.say("Order new laptops")
    said = await line.say("Make a note that my card number is 4111 1111 1111 1111")
    assert "haven't saved" in said
    assert line.events("memory.refused")[0]["reason"] == "card number"
    said = await line.say("Note that the alarm code is four three two one")
    assert "haven't saved" in said
    assert "4111" not in sys_.memory.dump_text() and "4 3 2 1" not in sys_.memory.dump_text()
    assert [i.text for i in sys_.memory.items("+15005550006")] == ["Order new laptops"]


async def test_summary_and_followups(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    for note in ("the launch moved to March", "send the slides to Maria",
                 "the budget was approved", "call the printer about the banners"):
        await line.say(f"Take a note: {note}")
    said = await line.say("Summarise the meeting")
    assert said.startswith("From 4 notes:") and "launch moved to March" in said
    said = await line.say("What are my follow-ups?")
    assert "You have 2 follow-ups. 1: Send the slides to Maria. 2: Call the printer" in said
    assert "Shall I mark them as confirmed?" in said
    assert "Confirmed." in await line.say("yes")
    assert sys_.memory.items("+15005550006", "followups")[0].text.startswith(
        "Confirmed follow-ups: Send the slides to Maria; Call the printer")


async def test_no_notes_yet(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    assert "no notes yet" in await Line(sys_, rec).say("Read my notes")
