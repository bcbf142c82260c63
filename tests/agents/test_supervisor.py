"""The front desk: greeting by name, escalation (asked, DTMF 0, repeated failure), goodbye,
repeat and help, handoffs between agents, configuration checked at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.evaluation.line import Line, make_system
from orchestration.agents.agent import HangUp, Transfer
from orchestration.agents.config import AgentsConfigError
from orchestration.agents.system import make_agent_factory
from orchestration.log.events import EventBus


async def test_second_call_is_greeted_by_name(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    first = Line(sys_, rec)
    assert (await first.greet()).startswith("Hello, this is the voxgate front desk")
    assert "Nice to meet you, Ada" in await first.say("Hi, my name is Ada.")
    assert first.events("memory.write") == [{"kind": "name", "text": "Ada"}]
    second = Line(sys_, rec, caller="+1 500 555 0006")  # same number, other spelling
    assert (await second.greet()).startswith("Welcome back, Ada.")
    assert second.events("memory.read")[0]["calls"] == 1
    stranger = Line(sys_, rec, caller="+15550009999")
    assert (await stranger.greet()).startswith("Hello")


@pytest.mark.parametrize("ask", ["I want to talk to a human.", "Get me an operator, please."])
async def test_escalation_on_request(tmp_path: Path, ask: str) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("Book Tuesday at 3 pm")
    said = await line.say(ask)
    assert "put you through to a colleague" in said
    assert line.events("call.escalated") == [{
        "reason": "caller asked for a person", "target": "operator", "failures": 0,
        "agent": "scheduling"}]
    assert line.actions[-1] == Transfer("operator", reason="caller asked for a person")
    # a turn after the transfer means the caller cut it before it happened: answered at
    # the front desk, not as a yes to the read-back they walked away from
    assert "booked" not in await line.say("hello?")
    assert line.events("agent.reopened") == [{"after": "transfer"}]
    assert not sys_.calendar.all()


async def test_dtmf_zero_escalates_and_menu_digits_route(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "What day would you like?" in await line.press("2")
    await line.press("0")
    assert line.events("call.escalated")[0]["reason"] == "dtmf 0"
    assert isinstance(line.actions[-1], Transfer)


async def test_repeated_failure_escalates(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "Sorry, I didn't get that. I can troubleshoot" in await line.say("Sing me a song")
    assert line.events("agent.failure")[0]["count"] == 1
    await line.say("What is the weather like?")
    assert line.events("call.escalated")[0]["reason"] == "repeated failure"


async def test_goodbye_repeat_help_and_handoff(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("Book me on Monday")
    assert "what time on Monday" in await line.say("Sorry, can you say that again?")
    assert "I can troubleshoot" in await line.say("What can you help me with?")
    said = await line.say("Actually, my internet is down.")  # walks away from the booking
    assert "Step 1" in said
    assert [(e["from"], e["to"]) for e in line.events("agent.handoff")] == [
        ("supervisor", "scheduling"), ("scheduling", "support")]
    await line.say("Goodbye.")
    assert isinstance(line.actions[-1], HangUp)
    transitions = line.events("workflow.transition")
    assert transitions[0] == {"agent": "scheduling", "from": None, "to": "route", "via": "start",
                              "run": "scheduling-1", "workflow": "scheduling"}
    nlu = line.events("nlu.result")
    assert nlu[0]["intent"] == "book" and nlu[0]["slots"] == {"date": "2026-11-30"}
    assert all(e["ms"] >= 0 for e in line.events("agent.turn"))


async def test_no_caller_id_still_works_without_memory(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec, caller=None)
    await line.greet()
    assert "don't know who is calling" in await line.say("Take a note: buy milk")
    assert line.events("memory.skipped")


def test_factory_and_broken_configuration(tmp_path: Path) -> None:
    factory = make_agent_factory(EventBus(), tmp_path)
    assert callable(factory)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bad.yaml").write_text(
        "name: bad\nintents: [book]\nstart: a\nstates:\n"
        "  a: {kind: task, tool: calendar.nope, next: b}\n"
        "  b: {kind: wait, on: [{intent: affirm, target: zz}]}\n"
        "  c: {kind: end}\n")
    (tmp_path / "agents.yaml").write_text(
        f"intents_file: {Path(__file__).parents[2] / 'orchestration/agents/intents.yaml'}\n"
        "flows: [flows/bad.yaml]\n")
    with pytest.raises(AgentsConfigError) as err:
        make_agent_factory(EventBus(), tmp_path / "d", tmp_path / "agents.yaml")
    text = str(err.value)
    # one validation, at load: the file, the path inside it and the reason
    assert "bad.yaml: states.b.on[0].target: unknown target state 'zz'" in text
    (flows / "bad.yaml").write_text(
        "name: bad\nintents: [book]\nstart: a\npermissions: []\nstates:\n"
        "  a: {kind: task, tool: calendar.book, next: b}\n"
        "  b: {kind: end}\n")
    with pytest.raises(AgentsConfigError, match=r"needs permissions \['calendar.write'\]"):
        make_agent_factory(EventBus(), tmp_path / "d", tmp_path / "agents.yaml")
