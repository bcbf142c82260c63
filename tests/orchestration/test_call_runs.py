"""Runs bound to a call, on the engine: their events reach the call's stream through a
real bus and ``BusLog`` into a real SQLite log, their state is the conversation's fold,
what they say is heard as it is produced, and a turn can be tried without writing."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from memory.router import MemoryRouter
from orchestration.agents.flow_host import FlowHost
from orchestration.clock import FakeClock
from orchestration.log.buslog import BusLog, attach_bus
from orchestration.log.events import EventBus
from orchestration.log.redact import redact_data
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.views import project
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.call_run import CallHost, CallRun, Conversation
from orchestration.workflow.engine import Engine, WorkflowError
from orchestration.workflow.loader import from_dict
from orchestration.workflow.runs import Turn
from tests.orchestration.toolkit import Crash, Num, Toolkit


class Text(BaseModel):
    text: str = ""


def conversation(name: str, states: dict[str, Any], **extra: Any) -> Any:
    return from_dict({"name": name, "start": next(iter(states)), "states": states, **extra})


class Line:
    """One call: a bus, its log, the engine and a conversation."""

    def __init__(self, tmp_path: Path, kit: Toolkit, redact: bool = False) -> None:
        self.bus = EventBus(redactor=redact_data if redact else None)
        self.store = SQLiteEventStore(tmp_path / "events.db", project)
        self.log: BusLog = attach_bus(self.bus, self.store)
        self.kit = kit
        self.engine = Engine(self.store, kit.registry, clock=FakeClock(), rng=random.Random(3))
        self.conversation = Conversation(self.bus, "c1")
        self.said: list[str] = []
        self.durable_saw: list[dict[str, Any]] = []

    async def durable(self) -> None:
        await asyncio.to_thread(self.log.flush)
        self.durable_saw.append(dict(self.stored()["run"]["running"]))

    def run(self, defn: Any, ident: str = "r1", conv: Conversation | None = None) -> CallRun:
        host = CallHost(durable=self.durable, say=self.said.append)
        return CallRun(defn, ident, conv or self.conversation, host)

    def stored(self) -> dict[str, Any]:
        self.log.flush()
        view = self.store.view("call:c1")
        assert view is not None
        conv: dict[str, Any] = view["conversation"]
        return conv

    def close(self) -> None:
        self.log.close()
        self.store.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    kit = Toolkit()
    ln = Line(tmp_path, kit)
    yield ln
    ln.close()


ASK = conversation("ask", {
    "hello": {"kind": "say", "say": "Hello.", "next": "when",
              "set": {"greeted": "true", "slots.topic": "'booking'"}},
    "when": {"kind": "wait", "slot": "date", "say": "Which day?", "next": "confirm"},
    "confirm": {"kind": "wait", "say": "{slots.date}, right?", "on": [
        {"changed": ["date"], "target": "confirm"},
        {"intent": "affirm", "guard": "vars.greeted", "target": "count"},
        {"intent": ["deny", "goodbye"], "target": "bye"}], "else": "when"},
    "count": {"tool": "inc", "input": {"x": 1, "tag": "$slots.date"}, "next": "done",
              "on_error": "bye"},
    "done": {"kind": "end", "say": "Done: {steps.count.x}.", "output": {"n": "$steps.count.x"}},
    "bye": {"kind": "end", "status": "escalated", "reason": "caller declined"},
}, intents=["book"], slots=["date"])


async def test_turns_move_a_call_run_and_its_state_is_the_logs(line: Line) -> None:
    run = line.run(ASK)
    await line.engine.begin(run)
    assert line.said == ["Hello.", "Which day?"]
    assert run.view["state"] == "when" and line.conversation.view["slots"] == {
        "topic": "booking"}
    assert run.view["ctx"]["vars"] == {"greeted": True}
    assert line.engine.match(run, Turn("affirm")) is None  # the slot is not known yet
    line.conversation.emit("slots.changed", {"slots": {"date": "tuesday"}})
    assert line.engine.match(run, Turn("book", changed=("date",))) == "confirm"
    assert await line.engine.answer(run, Turn("book", changed=("date",)))
    assert line.said[-1] == "Tuesday, right?"
    assert await line.engine.answer(run, Turn("affirm"))
    assert line.said[-1] == "Done: 2." and run.view["status"] == "succeeded"
    assert run.view["output"] == {"n": 2} and line.kit.calls == ["inc:tuesday"]
    assert line.stored() == json.loads(json.dumps(line.conversation.view))


async def test_match_is_a_dry_run_and_else_takes_any_other_turn(line: Line) -> None:
    run = line.run(ASK)
    line.conversation.emit("slots.changed", {"slots": {"date": "monday"}})
    await line.engine.begin(run)
    assert run.view["state"] == "confirm"  # the slot was known: nothing asked
    assert line.said == ["Hello.", "Monday, right?"]
    before = line.stored()
    assert line.engine.match(run, Turn("deny")) == "bye"
    assert line.engine.match(run, Turn("what")) == "when"  # else
    assert line.stored() == before  # nothing written
    assert await line.engine.answer(run, Turn("deny"))
    assert run.view["status"] == "escalated" and run.view["reason"] == "caller declined"
    assert not await line.engine.answer(run, Turn("deny"))  # ended: no turn answers it


async def test_a_step_is_durable_before_its_tool_runs_and_in_flight_runs_again(
        line: Line) -> None:
    two = conversation("two", {
        "a": {"tool": "inc", "input": {"x": 1, "tag": "a"}, "next": "b"},
        "b": {"tool": "inc", "input": {"x": "$steps.a.x", "tag": "b"}, "next": "d"},
        "d": {"kind": "end", "say": "{steps.b.x}"}}, intents=["go"])
    line.kit.crash_on = "b"  # the process dies inside b's tool
    with pytest.raises(Crash):
        await line.engine.begin(line.run(two))
    assert line.durable_saw == [{"a": 1}, {"b": 1}]  # in the log before each tool ran
    stored = line.stored()
    assert stored["run"]["running"] == {"b": 1} and stored["run"]["done"] == ["a"]
    # a fresh process: the conversation rebuilt from the log carries on
    line.kit.crash_on = None
    again = Conversation(line.bus, "c1", stored)
    run = line.run(two, conv=again)
    await line.engine.carry_on(run)
    assert line.kit.calls == ["inc:a", "inc:b", "inc:b"]  # a never again, b in flight again
    assert run.view["status"] == "succeeded" and line.said[-1] == "3"


async def test_what_a_run_says_is_heard_before_its_later_states_run(line: Line) -> None:
    release = asyncio.Event()

    @line.kit.registry.tool("slow")
    async def slow(inp: Num) -> Num:
        await release.wait()
        return inp

    flow = conversation("talk", {
        "first": {"kind": "say", "say": "One moment.", "next": "work"},
        "work": {"tool": "slow", "input": {"x": 5}, "next": "done"},
        "done": {"kind": "end", "say": "It is {steps.work.x}."}}, intents=["go"])
    router = MemoryRouter(None, None, line.conversation.emit)
    runner = ToolRunner(line.kit.registry, FakeClock(), random.Random(1),
                        line.engine.breakers)
    host = FlowHost(line.engine, line.conversation, {"talk": flow}, runner=runner,
                    router=router, durable=line.durable)
    stream = host.start("talk", Turn("go"))
    assert await anext(stream) == "One moment."
    await asyncio.sleep(0.05)
    assert host.run is not None and host.run.view["running"] == {"work": 1}  # still working
    release.set()
    assert [t async for t in stream] == ["It is 5."]
    assert host.outcome == "done"


async def test_a_saga_undoes_its_done_steps_then_goes_on_to_on_error(line: Line) -> None:
    saga = conversation("book", {
        "hold": {"tool": "inc", "input": {"x": 1, "tag": "hold"}, "next": "confirm",
                 "compensate": {"tool": "undo", "input": {"step": "hold"}}},
        "confirm": {"tool": "boom", "next": "done", "on_error": "sorry"},
        "done": {"kind": "end", "say": "Booked."},
        "sorry": {"kind": "end", "say": "Sorry, nothing was booked."}},
        saga=True, intents=["book"])
    run = line.run(saga)
    await line.engine.begin(run)
    assert line.kit.calls == ["inc:hold", "boom", "undo:hold"]
    assert line.said == ["Sorry, nothing was booked."]
    assert run.view["status"] == "succeeded" and run.view["compensations"] == {"hold": "done"}
    line.log.flush()
    types = [e.type for e in line.store.read(stream="call:c1")]
    assert types.index("saga.compensating") < types.index("compensation.completed") < max(
        i for i, t in enumerate(types) if t == "workflow.transition")


def test_back_office_runs_refuse_a_definition_that_talks(line: Line) -> None:
    engine = Engine(line.store, line.kit.registry, [ASK])
    with pytest.raises(WorkflowError, match="talks with a caller"):
        asyncio.run(engine.start("ask"))


async def test_a_loop_that_never_waits_fails_the_run(line: Line) -> None:
    loop = conversation("loop", {
        "a": {"kind": "choice", "rules": [{"guard": "vars.stop", "target": "end"}],
              "default": "b"},
        "b": {"kind": "say", "say": "again", "next": "a"},
        "end": {"kind": "end"}}, intents=["go"])
    run = line.run(loop)
    await line.engine.begin(run)
    assert run.view["status"] == "failed"
    assert run.view["error"] == "more than 500 states in a row without waiting"


async def test_the_log_gets_the_masked_event_the_live_run_the_value(tmp_path: Path) -> None:
    kit = Toolkit()
    line = Line(tmp_path, kit, redact=True)

    @kit.registry.tool("echo")
    def echo(inp: Text) -> Text:
        return inp

    flow = conversation("note", {
        "save": {"tool": "echo", "input": {"text": "$turn.text"}, "next": "done"},
        "done": {"kind": "end", "say": "Noted: {steps.save.text}"}}, intents=["note"])
    run = line.run(flow)
    run.turn = Turn("note", "call Bob on 415 555 0199")
    await line.engine.begin(run)
    assert line.said == ["Noted: call Bob on 415 555 0199"]
    assert line.stored()["run"]["ctx"]["steps"]["save"] == {"text": "call Bob on [phone ...0199]"}
    line.close()


async def test_an_engine_without_a_log_runs_call_bound_runs_only(line: Line) -> None:
    engine = Engine(None, line.kit.registry, [ASK])
    run = line.run(ASK)
    await engine.begin(run)
    assert run.view["state"] == "when" and line.said == ["Hello.", "Which day?"]
    with pytest.raises(WorkflowError, match="no event log"):
        engine.state("r1")


async def test_a_superseded_turn_is_undone_in_the_conversation(line: Line) -> None:
    c = line.conversation
    c.emit("agent.input", {"turn": 1})
    c.emit("slots.changed", {"slots": {"date": "2026-12-01"}})
    c.emit("agent.failure", {"count": 1})
    c.emit("agent.input", {"turn": 2})
    await line.engine.begin(line.run(ASK, "ask-1"))  # the cut turn started a run
    c.emit("slots.changed", {"slots": {"time": "15:00"}})
    c.emit("agent.goodbye", {"reason": "caller said goodbye"})
    c.emit("agent.rollback", {"turn": 3, "superseded": 1})  # not the last: nothing undone
    assert c.view["ended"] is not None
    c.emit("agent.rollback", {"turn": 3, "superseded": 2})
    assert c.view["slots"] == {"date": "2026-12-01"} and c.view["failures"] == 1
    assert c.view["ended"] is None and c.view["run"] is None
    assert c.view["runs"] == 1  # the next run is ask-2: run names stay unique
    c.emit("agent.input", {"turn": 3})
    c.emit("agent.goodbye", {"reason": "caller said goodbye"})
    c.emit("agent.reopened", {"after": "goodbye"})
    assert c.view["ended"] is None and c.view["agent"] is None
    assert line.stored() == json.loads(json.dumps(c.view))
