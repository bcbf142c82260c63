"""The engine end to end on a real SQLite log: sequential, parallel, conditional, timed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestration.clock import FakeClock
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import ConcurrentWriteError, MemoryEventStore
from orchestration.log.views import project
from orchestration.patterns.pools import ObservedBulkhead
from orchestration.patterns.tools import PermissionDenied, ToolRegistry
from orchestration.workflow.engine import Engine, InputInvalid, WorkflowError
from orchestration.workflow.loader import DefinitionError, from_dict
from tests.orchestration.toolkit import Crash, Num, Toolkit


def wf(name: str, states: dict[str, Any], **extra: Any) -> Any:
    return from_dict({"name": name, "start": next(iter(states)), "states": states, **extra})


SEQ = wf("seq", {
    "a": {"tool": "inc", "input": {"x": "$input.x", "tag": "a"}, "next": "b",
          "checkpoint": True},
    "b": {"tool": "inc", "input": {"x": "$steps.a.x", "tag": "b"}, "next": "c"},
    "c": {"chain": ["double", "double"], "input": {"x": "$steps.b.x"}, "next": "done"},
    "done": {"kind": "end", "output": {"result": "$steps.c.x"}},
}, input={"x": {"type": "integer"}})


@pytest.fixture
def kit() -> Toolkit:
    return Toolkit()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    s = SQLiteEventStore(tmp_path / "log.db", project)
    yield s
    s.close()


def engine(store: Any, kit: Toolkit, clock: FakeClock, *defs: Any) -> Engine:
    return Engine(store, kit.registry, defs, clock=clock, rng=random.Random(7),
                  ids=iter(f"id{i}" for i in range(100)).__next__)


def types(store: SQLiteEventStore, ident: str) -> list[str]:
    return [e.type for e in store.read(stream=f"wf:{ident}")]


async def test_sequential_steps_chain_outputs(store: SQLiteEventStore, kit: Toolkit,
                                              clock: FakeClock) -> None:
    eng = engine(store, kit, clock, SEQ)
    ident = await eng.start("seq", {"x": 1})
    view = eng.state(ident)
    assert view["status"] == "succeeded" and view["output"] == {"result": 12}
    assert kit.calls == ["inc:a", "inc:b", "double", "double"]
    assert view["done"] == ["a", "b", "c"]
    assert types(store, ident)[:6] == ["workflow.started", "workflow.transition",
                                       "step.started", "step.completed", "checkpoint.saved",
                                       "workflow.transition"]


async def test_inputs_failing_their_schema_are_refused_and_nothing_is_written(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    eng = engine(store, kit, clock, SEQ)
    with pytest.raises(InputInvalid) as err:
        await eng.start("seq", {"x": "many", "extra": 1})
    assert str(err.value) == ("input for workflow 'seq' is invalid: x: Input should be a valid "
                              "integer, unable to parse string as an integer; extra: Extra "
                              "inputs are not permitted")
    with pytest.raises(WorkflowError, match="unknown workflow 'nope'; known: seq"):
        await eng.start("nope")
    assert store.last_seq() == 0


@pytest.mark.parametrize(
    ("tool", "error"),
    [
        ("boom", "ToolError: tool 'boom': failed: RuntimeError: exploded"),
        ("hang", "ToolTimeout: tool 'hang': no answer within 0.05 s"),
        ("garbage", "ToolOutputInvalid: tool 'garbage': returned output that fails its "
                    "schema: x: Input should be a valid integer, unable to parse string as an "
                    "integer"),
    ],
)
async def test_tools_that_raise_hang_or_return_garbage_fail_the_step_clearly(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock, tool: str, error: str) -> None:
    flow = wf("bad", {"a": {"tool": tool, "next": "d"}, "d": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    view = eng.state(await eng.start("bad"))
    assert view["status"] == "failed" and view["error"] == error
    assert types(store, view["id"])[-2:] == ["step.failed", "workflow.failed"]


async def test_fallbacks_run_in_order_when_a_tool_fails_or_times_out(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    flow = wf("fb", {"a": {"tool": "hang", "fallbacks": ["boom", "double"],
                           "input": {"x": 4}, "next": "d"}, "d": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    ident = await eng.start("fb")
    view = eng.state(ident)
    assert view["status"] == "succeeded" and view["ctx"]["steps"]["a"] == {"x": 8, "tag": ""}
    fallbacks = [dict(e.data) for e in store.read(stream=f"wf:{ident}")
                 if e.type == "tool.fallback"]
    assert [(f["from"], f["to"]) for f in fallbacks] == [("hang", "boom"), ("boom", "double")]
    assert fallbacks[0]["reason"] == "ToolTimeout: tool 'hang': no answer within 0.05 s"


async def test_transient_errors_are_retried_with_backoff_on_the_clock(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    kit.fail_times["t"] = 2
    flow = wf("rt", {"a": {"tool": "flaky", "input": {"tag": "t"}, "next": "d",
                           "retry": {"max_attempts": 3, "base": "2s", "jitter": "none"}},
                     "d": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    view = eng.state(await eng.start("rt"))
    assert view["status"] == "succeeded" and clock.sleeps == [2.0, 4.0]
    assert view["counts"]["retry.scheduled"] == 2 and view["counts"]["tool.failed"] == 2


async def test_an_open_breaker_sends_calls_to_the_fallback(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    kit.fail_times["x"] = 100
    flow = wf("br", {"a": {"tool": "flaky", "fallbacks": ["double"], "input": {"tag": "x"},
                           "next": "d"}, "d": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    for _ in range(5):  # the default threshold is five consecutive failures
        await eng.start("br")
    assert eng.breakers.states()["flaky"] == "open"
    kit.calls.clear()
    ident = await eng.start("br")
    assert kit.calls == ["double"]  # the open breaker spared the dead dependency
    reasons = [e.data["reason"] for e in store.read(stream=f"wf:{ident}")
               if e.type == "tool.fallback"]
    assert reasons[0].startswith("BreakerOpen: circuit breaker 'flaky' is open until")
    assert store.view("breaker:flaky") == {**(store.view("breaker:flaky") or {}),
                                           "state": "open"}


async def test_rollback_to_a_checkpoint_compensates_and_pauses(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    flow = wf("rb", {
        "a": {"tool": "inc", "input": {"tag": "a"}, "checkpoint": True, "next": "b",
              "compensate": {"tool": "undo", "input": {"step": "a"}}},
        "b": {"tool": "inc", "input": {"tag": "b"}, "next": "c",
              "compensate": {"tool": "undo", "input": {"step": "b"}}},
        "c": {"tool": "inc", "input": {"tag": "c"}, "next": "d",
              "compensate": {"tool": "undo", "input": {"step": "c"}}},
        "d": {"tool": "boom", "next": "e", "on_error": "rollback"},
        "e": {"kind": "end"},
    })
    eng = engine(store, kit, clock, flow)
    ident = await eng.start("rb")
    view = eng.state(ident)
    assert view["status"] == "paused" and view["state"] == "b"
    assert kit.calls == ["inc:a", "inc:b", "inc:c", "boom", "undo:c", "undo:b"]
    assert view["done"] == ["a"] and list(view["ctx"]["steps"]) == ["a"]
    rejected = await eng.signal(ident, "intent.go")
    assert not rejected.accepted and rejected.reason.endswith("(send resume or abort)")
    kit.calls.clear()
    result = await eng.signal(ident, "resume")
    assert result.accepted and kit.calls == ["inc:b", "inc:c", "boom", "undo:c", "undo:b"]


async def test_a_saga_compensates_every_done_step_in_reverse(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    steps: dict[str, Any] = {
        s: {"tool": "inc", "input": {"tag": s}, "next": n,
            "compensate": {"tool": "undo", "input": {"step": s}}}
        for s, n in (("reserve", "charge"), ("charge", "ship"))
    }
    flow = wf("saga", {**steps, "ship": {"tool": "boom", "next": "done"},
                       "done": {"kind": "end"}}, saga=True)
    eng = engine(store, kit, clock, flow)
    view = eng.state(await eng.start("saga"))
    assert view["status"] == "compensated"
    assert kit.calls == ["inc:reserve", "inc:charge", "boom", "undo:charge", "undo:reserve"]
    assert view["compensations"] == {"charge": "done", "reserve": "done"}


@pytest.mark.parametrize(
    ("policy", "quorum", "status"),
    [("all", None, "failed"), ("quorum", 2, "succeeded"), ("quorum", 3, "failed"),
     ("best_effort", None, "succeeded")],
)
async def test_fan_out_policies_keep_each_branch(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock, policy: str,
        quorum: int | None, status: str) -> None:
    flow = wf("fan", {
        "gather": {"kind": "parallel", "policy": policy, "quorum": quorum,
                   "max_concurrency": 2, "next": "d", "branches": {
                       "one": {"tool": "inc", "input": {"x": 1}},
                       "two": {"tool": "double", "input": {"x": 2}},
                       "bad": {"tool": "boom"}}},
        "d": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    view = eng.state(await eng.start("fan"))
    assert view["status"] == status
    branches = view["branches"]["gather"]
    assert branches["one"] == {"ok": True, "output": {"x": 2, "tag": ""}}
    assert branches["bad"]["error"] == "ToolError: tool 'boom': failed: RuntimeError: exploded"


async def test_fan_out_over_a_list(store: SQLiteEventStore, kit: Toolkit,
                                   clock: FakeClock) -> None:
    flow = wf("each", {
        "all": {"kind": "parallel", "for_each": "input.items", "next": "d",
                "each": {"tool": "double", "input": {"x": "$item"}}},
        "d": {"kind": "end", "output": {"n": "$steps.all.succeeded"}}},
        input={"items": {"type": "list"}})
    eng = engine(store, kit, clock, flow)
    view = eng.state(await eng.start("each", {"items": [1, 2, 3]}))
    assert view["output"] == {"n": 3}
    assert [b["output"]["x"] for b in view["branches"]["all"].values()] == [2, 4, 6]


CALL = wf("call", {
    "menu": {"on": [
        {"signal": "dtmf", "guard": "signal.data.digit == '1'", "target": "billing"},
        {"signal": "intent.book", "guard": "slots.date != null", "target": "book"},
        {"signal": "slot.*", "target": "menu"}],
        "timers": [{"after": "30s", "target": "timeout"}]},
    "billing": {"kind": "end", "output": {"route": "billing"}},
    "book": {"tool": "inc", "input": {"tag": "$slots.date"}, "next": "booked"},
    "booked": {"kind": "end", "output": {"date": "$slots.date"}},
    "timeout": {"kind": "end", "status": "failed"},
})


async def test_signals_with_guards_apply_or_are_rejected_and_recorded(
        store: SQLiteEventStore, kit: Toolkit, clock: FakeClock) -> None:
    eng = engine(store, kit, clock, CALL)
    ident = await eng.start("call")
    no_date = await eng.signal(ident, "intent.book")
    assert not no_date.accepted and no_date.reason == "guard failed: slots.date != null"
    wrong = await eng.signal(ident, "dtmf", {"digit": "9"})
    assert not wrong.accepted and wrong.state == "menu"
    unknown = await eng.signal(ident, "intent.cancel")
    assert unknown.reason == "no transition for 'intent.cancel' in state 'menu'"
    assert (await eng.signal(ident, "slot.date", {"value": "2026-12-01"})).accepted
    ok = await eng.signal(ident, "intent.book")
    assert ok.accepted and ok.status == "succeeded"
    view = eng.state(ident)
    assert view["output"] == {"date": "2026-12-01"} and view["rejected"] == 3
    late = await eng.signal(ident, "dtmf", {"digit": "1"})
    assert not late.accepted and late.reason == ("workflow is succeeded in state 'booked', "
                                                 "not waiting for signals")
    assert types(store, ident).count("transition.rejected") == 4


async def test_timers_fire_on_the_clock_and_survive_a_restart(
        tmp_path: Path, kit: Toolkit, clock: FakeClock) -> None:
    path = tmp_path / "log.db"
    first = SQLiteEventStore(path, project)
    ident = await engine(first, kit, clock, CALL).start("call")
    first.close()
    clock.advance(29)
    again = SQLiteEventStore(path, project)  # a new process: timers come from the log
    eng = engine(again, kit, clock, CALL)
    assert await eng.tick() == 0
    clock.advance(1)
    assert await eng.tick() == 1
    view = eng.state(ident)
    assert view["status"] == "failed" and view["state"] == "timeout" and view["timers"] == {}
    again.close()


async def test_sla_levels_escalate_while_waiting(store: SQLiteEventStore, kit: Toolkit,
                                                 clock: FakeClock) -> None:
    flow = wf("sla", {
        "wait": {"on": [{"signal": "done", "target": "end"}], "sla": [
            {"after": "1h", "escalate": {"tool": "inc", "input": {"tag": "remind"}}},
            {"after": "4h", "escalate": {"tool": "inc", "input": {"tag": "manager"}},
             "target": "escalated"}]},
        "escalated": {"kind": "end", "status": "failed"},
        "end": {"kind": "end"}})
    eng = engine(store, kit, clock, flow)
    ident = await eng.start("sla")
    clock.advance(3600)
    await eng.tick()
    assert eng.state(ident)["status"] == "waiting" and kit.calls == ["inc:remind"]
    clock.advance(3 * 3600)
    await eng.tick()
    view = eng.state(ident)
    assert kit.calls == ["inc:remind", "inc:manager"]
    assert view["status"] == "failed" and view["escalations"] == 2


async def test_resume_after_a_crash_does_not_rerun_done_steps(
        tmp_path: Path, kit: Toolkit, clock: FakeClock) -> None:
    path = tmp_path / "log.db"
    s1 = SQLiteEventStore(path, project)
    kit.crash_on = "b"
    with pytest.raises(Crash):
        await engine(s1, kit, clock, SEQ).start("seq", {"x": 1})
    s1.close()
    assert kit.calls == ["inc:a", "inc:b"]
    kit.crash_on = None
    kit.calls.clear()
    s2 = SQLiteEventStore(path, project)
    eng = engine(s2, kit, clock, SEQ)
    assert await eng.resume_all() == ["id0"]
    assert kit.calls == ["inc:b", "double", "double"]
    assert eng.state("id0")["output"] == {"result": 12}
    s2.close()


async def test_two_engines_cannot_both_advance_one_instance(
        tmp_path: Path, kit: Toolkit, clock: FakeClock) -> None:
    path = tmp_path / "log.db"
    s1, s2 = SQLiteEventStore(path, project), SQLiteEventStore(path, project)
    e1, e2 = engine(s1, kit, clock, CALL), engine(s2, kit, clock, CALL)
    ident = await e1.start("call")
    stale = e2._load(ident)
    assert (await e1.signal(ident, "slot.date", {"value": "x"})).accepted
    with pytest.raises(ConcurrentWriteError):
        await e2._signal(stale, "dtmf", {"digit": "1"})
    assert e1.state(ident)["state"] == "menu"
    s1.close()
    s2.close()


async def test_a_full_bulkhead_rejects_at_once_and_the_fallback_answers(
        store: SQLiteEventStore, clock: FakeClock) -> None:
    seen: list[str] = []
    reg = ToolRegistry({"slow": ObservedBulkhead("slow", 1, 0, lambda n, t, d: seen.append(t))})
    gate = asyncio.Event()

    @reg.tool("busy", pool="slow")
    async def busy(inp: Num) -> Num:
        await gate.wait()
        return inp

    @reg.tool("spare")
    def spare(inp: Num) -> Num:
        return Num(x=-1)

    flow = wf("bh", {"fan": {"kind": "parallel", "policy": "all", "next": "d", "branches": {
        "a": {"tool": "busy", "input": {"x": 1}},
        "b": {"tool": "busy", "input": {"x": 2}}}},
        "d": {"kind": "end"}})
    flow2 = wf("bh2", {"one": {"tool": "busy", "fallbacks": ["spare"], "next": "d"},
                       "d": {"kind": "end", "output": {"x": "$steps.one.x"}}})
    eng = Engine(store, reg, [flow, flow2], clock=clock)
    first = asyncio.create_task(eng.start("bh"))
    for _ in range(5):
        await asyncio.sleep(0)
    ident = await eng.start("bh2")  # the pool's only slot is taken, and it has no queue
    assert eng.state(ident)["output"] == {"x": -1}
    gate.set()
    view = eng.state(await first)
    assert view["status"] == "failed"
    errors = [b.get("error") for b in view["branches"]["fan"].values() if not b["ok"]]
    assert errors == ["BulkheadFull: bulkhead 'slow' is full: 1 running and 0 waiting "
                      "(max_concurrent=1, max_queue=0); try again later"]
    assert seen.count("bulkhead.rejected") == 2


async def test_permissions_are_checked_again_on_every_call(kit: Toolkit) -> None:
    # the engine refuses such a definition up front; the registry still checks each call
    with pytest.raises(PermissionDenied) as err:
        await kit.registry.invoke("secret", {}, granted=["crm.read"])
    assert str(err.value) == "tool 'secret': needs permissions not granted: ['vault.read']"
    assert await kit.registry.invoke("secret", {"x": 2}, granted=["vault.read"]) == {
        "x": 2, "tag": ""}
    flow = wf("sec", {"a": {"tool": "secret", "next": "d"}, "d": {"kind": "end"}})
    with pytest.raises(DefinitionError, match="needs permissions"):
        Engine(MemoryEventStore(project), kit.registry, [flow])
