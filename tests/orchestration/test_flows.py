"""The voice agents' flows in the one workflow format, run by the engine bound to a call:
each converted flow loads (with the tool and permission checks), scripted calls with the
real NLU, tools, stores and memory say what the agents said before, and the call's state
in the log is the live state, from which a call carries on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.workflow.diagram import to_graph, to_mermaid
from orchestration.workflow.loader import DefinitionError, load_text
from tests.orchestration.conversation_kit import CONVERTED, FLOWS, Agents, ScriptedCall


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    a = Agents(tmp_path)
    yield a
    a.close()


def test_each_converted_flow_loads_checked_and_draws(agents: Agents) -> None:
    for name in FLOWS:
        flow = agents.flows[name]
        assert flow.conversational and flow.intents
        graph = to_graph(flow)
        assert {e["kind"] for e in graph["edges"]} <= {"ok", "next", "error", "turn", "else",
                                                        "slot", "rule", "default"}
        assert to_mermaid(flow).startswith("stateDiagram-v2\n")
    kinds = {e["kind"] for f in agents.flows.values() for e in to_graph(f)["edges"]}
    assert {"turn", "else", "slot", "next"} <= kinds
    # the registry's checks reach the flows: a tool the flow's permissions do not grant
    text = (CONVERTED / "ops.yaml").read_text().replace("permissions: [ops.read]",
                                                         "permissions: []")
    with pytest.raises(DefinitionError) as err:
        load_text(text, "ops.yaml", agents.system.registry)
    assert err.value.problems == [("states.probe.tool", "tool 'ops.probe' needs permissions "
                                   "['ops.read'] that the workflow does not grant"),
                                  ("states.probe.fallbacks[0]", "tool 'ops.cached' needs "
                                   "permissions ['ops.read'] that the workflow does not grant"),
                                  ("states.all.tool", "tool 'ops.summary' needs permissions "
                                   "['ops.read'] that the workflow does not grant")]


async def test_a_booking_is_read_back_and_only_a_yes_books(agents: Agents) -> None:
    call = ScriptedCall(agents, "book1")
    said = await call.say("I'd like to book an appointment for Tuesday at three p.m.")
    assert said == "Tuesday at 3 PM, shall I book it?"
    assert agents.system.calendar.all() == []
    assert await call.say("Yes, please.") == "Done. You're booked for Tuesday at 3 PM."
    assert [(b["day"], b["time"], b["caller"]) for b in agents.system.calendar.all()] == [
        ("2026-12-01", "15:00", "+15005550006")]
    assert call.host.outcome == "done"
    assert call.events("memory.write")[-1]["kind"] == "booking"
    assert [e["tool"] for e in call.events("tool.succeeded")] == [
        "calendar.check", "calendar.book", "booking.confirm"]  # the booking saga's steps
    moves = [(e["from"], e["to"], e["via"]) for e in call.events("workflow.transition")]
    assert moves[:4] == [(None, "route", "start"), ("route", "ask_date", "default"),
                         ("ask_date", "ask_time", "slot"), ("ask_time", "check", "slot")]
    assert moves[-3:] == [("commit", "book", "default"), ("book", "confirm_booking", "ok"),
                          ("confirm_booking", "booked", "ok")]


async def test_missing_slots_are_asked_no_and_corrections_change_the_slot(
        agents: Agents) -> None:
    call = ScriptedCall(agents, "book2")
    assert await call.say("I need an appointment.") == "Sure. What day would you like?"
    assert await call.say("Tuesday") == "And at what time on Tuesday?"
    assert await call.say("10 in the morning") == "Tuesday at 10 AM, shall I book it?"
    assert "instead" in await call.say("No.")
    assert await call.say("Friday at eleven") == "Tomorrow at 11 AM, shall I book it?"
    assert await call.say("No, make it 2 pm.") == "Tomorrow at 2 PM, shall I book it?"
    assert agents.system.calendar.all() == []
    await call.say("Yes")
    assert [(b["day"], b["time"]) for b in agents.system.calendar.all()] == [
        ("2026-11-27", "14:00")]


async def test_a_taken_slot_gets_alternatives_and_yes_takes_the_first(agents: Agents) -> None:
    first = ScriptedCall(agents, "alt1", caller="+15550000001")
    await first.say("Book Tuesday at 3 pm")
    await first.say("yes")
    other = ScriptedCall(agents, "alt2", caller="+15550000002")
    said = await other.say("I'd like Tuesday at 3 pm please")
    assert said == ("Sorry, Tuesday at 3 PM is taken. I can offer Tuesday at 2:30 PM or "
                    "Tuesday at 3:30 PM. Which would you like?")
    assert await other.say("Yes, the first one.") == "Tuesday at 2:30 PM, shall I book it?"
    await other.say("yes")
    assert sorted(str(b["time"]) for b in agents.system.calendar.all()) == ["14:30", "15:00"]


async def test_support_walks_the_playbook_then_opens_a_ticket(agents: Agents) -> None:
    call = ScriptedCall(agents, "support1")
    said = await call.say("My internet is not working.")
    assert said.startswith("Let's get your connection back. Step 1: Please unplug your router")
    assert said.endswith("Did that fix it?")
    assert (await call.say("No.")).startswith("Step 2: Check that the cable")
    await call.say("No.")
    said = await call.say("No, still nothing.")
    assert said.startswith("That didn't solve it, so I've opened ticket")
    assert [t["category"] for t in agents.system.tickets.all()] == ["connectivity"]


async def test_workspace_notes_are_saved_dictated_and_read_back(agents: Agents) -> None:
    call = ScriptedCall(agents, "notes1")
    assert await call.say("Take a note: call Anna about the budget.") == (
        "Noted: Call Anna about the budget.")
    assert await call.say("Take a note.") == "Sure. What should the note say?"
    assert await call.say("Order more coffee beans.") == "Noted: Order more coffee beans."
    said = await call.say("Make a note that my card number is 4111 1111 1111 1111")
    assert said == ("I don't keep card numbers, passwords or codes, so I haven't saved that "
                    "note.")
    said = await call.say("Read my notes.")
    assert said == ("Your latest notes. 1: Order more coffee beans. 2: Call Anna about the "
                    "budget.")
    anonymous = ScriptedCall(agents, "notes2", caller=None)
    assert await anonymous.say("Take a note: buy milk.") == (
        "I can't keep notes on this line, because I don't know who is calling.")


async def test_ops_reads_the_status(agents: Agents) -> None:
    call = ScriptedCall(agents, "ops1")
    said = await call.say("What is the status of payments?")
    assert "payments" in said.lower()
    assert call.events("tool.called")[0]["tool"] == "ops.probe"


async def test_the_call_state_in_the_log_is_the_live_one_and_a_call_carries_on(
        agents: Agents) -> None:
    call = ScriptedCall(agents, "resume1")
    await call.say("Book Tuesday at 3 pm")
    stored = agents.stored("resume1")["conversation"]
    assert stored == json.loads(json.dumps(call.conversation.view))
    assert stored["agent"] is None and stored["slots"] == {"date": "2026-12-01",
                                                           "time": "15:00"}
    assert stored["run"]["state"] == "confirm" and stored["run"]["status"] == "waiting"
    # a fresh host from the stored state asks the same question, and a yes books once
    again = ScriptedCall(agents, "resume1", view=stored)
    assert again.host.waiting and again.host.prompt() == "Tuesday at 3 PM, shall I book it?"
    assert [t async for t in again.host.carry_on()] == []  # waiting: nothing runs again
    assert await again.say("yes") == "Done. You're booked for Tuesday at 3 PM."
    assert [(b["day"], b["time"]) for b in agents.system.calendar.all()] == [
        ("2026-12-01", "15:00")]
    assert agents.stored("resume1")["conversation"] == json.loads(
        json.dumps(again.conversation.view))
