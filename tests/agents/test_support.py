"""Support dialogues: classify, walk the playbook, open a ticket (helpdesk with retry, a
circuit breaker and the local queue as fallback), escalate when stuck or asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway.evaluation.line import Line, make_system
from gateway.evaluation.loopback import LoopbackHttp
from orchestration.clock import FakeClock
from orchestration.patterns.breaker import BreakerPolicy


async def test_playbook_step_fixes_it(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    said = await line.say("My internet is down.")
    assert "Step 1: Please unplug your router" in said and said.endswith("Did that fix it?")
    said = await line.say("Yes, it works now.")
    assert "glad that's fixed" in said
    assert sys_.tickets.all() == []


async def test_unclassified_problem_is_asked_then_ticketed(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    assert "connection, signing in, or billing" in await line.say("I have a problem.")
    assert "Step 1" in await line.say("I can't log in")
    assert "Step 2" in await line.say("No.")
    said = await line.say("No, still broken.")
    assert "opened ticket T 1 0 0 1" in said
    assert [(t["ref"], t["category"], t["status"]) for t in sys_.tickets.all()] == [
        ("T1001", "login", "open")]
    assert line.events("memory.write")[-1]["kind"] == "ticket"


async def test_helpdesk_retried_then_answers(tmp_path: Path) -> None:
    def helpdesk(n: int, body: Any) -> tuple[int, Any]:
        return (503, {}) if n <= 2 else (201, {"id": "HD-77"})

    with LoopbackHttp({"/tickets": helpdesk}) as server:
        async with httpx.AsyncClient() as http:
            sys_, rec = make_system(tmp_path, clock=FakeClock(), http=http, overrides={
                "support": {"helpdesk_url": f"{server.url}/tickets"}})
            line = Line(sys_, rec)
            await line.say("I was charged twice")
            await line.say("no")
            said = await line.say("no")
    assert "ticket H D - 7 7" in said
    assert server.hits["/tickets"] == 3
    assert server.bodies[-1]["body"]["category"] == "billing"
    assert [f["attempt"] for f in line.events("tool.failed")] == [1, 2]
    assert len(line.events("retry.scheduled")) == 2
    assert sys_.tickets.all()[0]["ref"] == "HD-77"


async def test_dead_helpdesk_opens_the_breaker_and_queues_locally(tmp_path: Path) -> None:
    def down(n: int, body: Any) -> tuple[int, Any]:
        return 503, {}

    with LoopbackHttp({"/tickets": down}) as server:
        async with httpx.AsyncClient() as http:
            sys_, rec = make_system(
                tmp_path, clock=FakeClock(), http=http,
                breaker_policy=BreakerPolicy(failure_threshold=3, cooldown=60),
                overrides={"support": {"helpdesk_url": f"{server.url}/tickets"}})
            said = []
            for caller in ("+15550000001", "+15550000002"):
                line = Line(sys_, rec, caller=caller)
                await line.say("My bill is wrong")
                await line.say("no")
                said.append(await line.say("no"))
    assert all("opened ticket" in s for s in said)
    assert server.hits["/tickets"] == 3  # the second call found the breaker open
    assert [t["status"] for t in sys_.tickets.all()] == ["queued", "queued"]
    assert any(e.type == "breaker.state" and e.data["to"] == "open" for e in rec.events)
    fallbacks = [e.data for e in rec.events if e.type == "tool.fallback"]
    assert [f["to"] for f in fallbacks] == ["ticket.queue", "ticket.queue"]
    assert "BreakerOpen" in fallbacks[1]["reason"]


async def test_stuck_caller_is_escalated(tmp_path: Path) -> None:
    sys_, rec = make_system(tmp_path)
    line = Line(sys_, rec)
    await line.say("I have a problem.")
    assert "Sorry, I didn't get that" in await line.say("Sing me a song.")
    await line.say("What is the weather like?")
    escalated = line.events("call.escalated")
    assert escalated and escalated[0]["reason"] == "repeated failure"
    assert escalated[0]["agent"] == "support"
    assert line.actions[-1].__class__.__name__ == "Transfer"
