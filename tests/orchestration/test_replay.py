"""Replaying the log gives the live state (property-tested), and damaged logs are salvaged."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.clock import FakeClock
from orchestration.log.replay import rebuild, replay, salvage
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import MemoryEventStore, NewEvent
from orchestration.log.views import project
from orchestration.workflow.engine import Engine
from tests.orchestration.test_engine import CALL, SEQ
from tests.orchestration.toolkit import Toolkit

WORDS = st.sampled_from(["a", "b", "c"])
STREAMS = st.sampled_from(["wf:1", "wf:2", "call:x", "call:y", "sched:s", "breaker:t", "misc"])


def _event(stream: str, draw: Any) -> NewEvent:
    if stream.startswith("wf:"):
        kind = draw(st.sampled_from([
            "workflow.started", "workflow.transition", "step.started", "step.completed",
            "step.failed", "checkpoint.saved", "rollback.completed", "signal.received",
            "timer.set", "timer.fired", "transition.rejected", "branch.completed",
            "branch.failed", "compensation.completed", "workflow.completed", "saga.compensating",
            "workflow.resumed", "vars.set", "slots.changed", "state.entered"]))
        step = draw(WORDS)
        data: dict[str, Any] = {
            "workflow.started": {"name": "n", "input": {"k": draw(st.integers())}},
            "workflow.transition": {"run": "1", "workflow": "n", "from": None, "to": step,
                                    "via": "rule"},
            "state.entered": {"state": step},  # as logs written before issue 12 have it
            "step.started": {"step": step},
            "step.completed": {"step": step, "output": {"v": draw(st.integers())}},
            "step.failed": {"step": step, "error": "e"},
            "checkpoint.saved": {"step": step},
            "rollback.completed": {"checkpoint": step, "state": "b"},
            "signal.received": {"signal": draw(st.sampled_from(["slot.d", "intent.x"])),
                                "data": {"value": draw(st.text(max_size=3))}},
            "timer.set": {"timer": step, "due": 1.0, "state": step, "kind": "timer"},
            "timer.fired": {"timer": step},
            "transition.rejected": {"state": step, "signal": "s", "reason": "r"},
            "branch.completed": {"step": step, "branch": draw(WORDS), "output": 1},
            "branch.failed": {"step": step, "branch": draw(WORDS), "error": "x"},
            "compensation.completed": {"step": step},
            "workflow.completed": {"status": "succeeded", "output": None},
            "saga.compensating": {"step": step, "error": "x"},
            "workflow.resumed": {},
            "vars.set": {"vars": {step: draw(st.integers())}},
            "slots.changed": {"slots": {step: draw(st.sampled_from([None, "x"]))}},
        }[kind]
        return NewEvent(stream, kind, data, float(draw(st.integers(0, 10))))
    if stream.startswith("sched:"):
        kind = draw(st.sampled_from(["schedule.armed", "schedule.fired"]))
        return NewEvent(stream, kind, {"due": 5.0, "instance": "i"})
    if stream.startswith("breaker:"):
        return NewEvent(stream, "breaker.state", {"from": "closed", "to": draw(st.sampled_from(
            ["open", "half_open", "closed"]))})
    if stream.startswith("call:"):
        return _call_event(stream, draw)
    return NewEvent(stream, draw(st.sampled_from(["call.started", "turn.final", "call.ended"])),
                    {"text": draw(st.text(max_size=5))})


def _call_event(stream: str, draw: Any) -> NewEvent:
    """A call's own events and its conversation's (a run of its flow included)."""
    run = draw(st.sampled_from(["r1", "r2"]))
    step = draw(WORDS)
    kind, data = draw(st.sampled_from([
        ("call.started", {"text": "hi"}), ("turn.final", {"text": "yes"}),
        ("call.ended", {}), ("agent.handoff", {"from": "supervisor", "to": "scheduling"}),
        ("slots.changed", {"slots": {step: draw(st.sampled_from([None, "2026-12-01"]))}}),
        ("agent.failure", {"count": 1}), ("agent.turn", {"failures": 0, "bus_seq": 3}),
        ("agent.reply", {"text": "Shall I book it?"}), ("call.escalated", {"reason": "r"}),
        ("workflow.started", {"run": run, "name": "scheduling", "input": {}}),
        ("workflow.transition", {"run": run, "workflow": "scheduling", "to": step}),
        ("step.completed", {"run": run, "step": step, "output": {"v": 1}}),
        ("vars.set", {"run": run, "vars": {step: 2}}),
        ("workflow.waiting", {"run": run, "state": step}),
        ("agent.input", {"turn": draw(st.integers(1, 3))}),
        ("agent.rollback", {"turn": 3, "superseded": draw(st.integers(1, 3))}),
        ("agent.reopened", {"after": "goodbye"}),
    ]))
    return NewEvent(stream, kind, data, float(draw(st.integers(0, 10))))


@st.composite
def batches(draw: Any) -> list[list[NewEvent]]:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        out.append([_event(draw(STREAMS), draw) for _ in range(draw(st.integers(1, 12)))])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_replaying_any_log_gives_the_live_views(groups: list[list[NewEvent]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for store in (MemoryEventStore(project), SQLiteEventStore(Path(tmp) / "l.db", project)):
            for group in groups:
                store.append(group)
            report = replay(store)
            assert report.ok, report
            assert report.events == sum(len(g) for g in groups)
            store.close()


SIGNALS = st.lists(st.tuples(
    st.sampled_from(["intent.book", "dtmf", "slot.date", "intent.other", "tick"]),
    st.sampled_from(["1", "2", "2026-01-01"])), max_size=8)


@settings(max_examples=25, deadline=None)
@given(SIGNALS)
def test_replaying_engine_runs_gives_the_live_state(signals: list[tuple[str, str]]) -> None:
    async def run() -> None:
        clock, kit, store = FakeClock(), Toolkit(), MemoryEventStore(project)
        eng = Engine(store, kit.registry, [CALL, SEQ], clock=clock, rng=random.Random(1))
        live: dict[str, Any] = {}
        ident = await eng.start("call")
        await eng.start("seq", {"x": 3})
        for name, value in signals:
            if name == "tick":
                clock.advance(20)
                await eng.tick()
            else:
                await eng.signal(ident, name, {"digit": value, "value": value})
        live = eng.state(ident)
        rebuilt, _ = rebuild(store)
        assert rebuilt[f"wf:{ident}"] == live
        assert replay(store).ok

    asyncio.run(run())


def _log(path: Path, n: int) -> None:
    s = SQLiteEventStore(path, project)
    for i in range(0, n, 100):
        s.append([NewEvent(f"call:c{j % 5}", "turn.final", {"text": "hello " * 20, "i": j})
                  for j in range(i, i + 100)])
    s.close()


def test_replay_finds_and_fixes_a_view_edited_behind_the_stores_back(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path, 200)
    db = sqlite3.connect(path)
    db.execute("UPDATE streams SET view = '{\"kind\":\"call\"}' WHERE stream = 'call:c1'")
    db.commit()
    db.close()
    store = SQLiteEventStore(path, project)
    report = replay(store)
    assert report.mismatched == ["call:c1"] and report.events == 200
    assert replay(store, fix=True).mismatched == ["call:c1"]
    assert replay(store).ok
    store.close()


def test_salvage_copies_intact_events_and_names_the_lost_ones(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path, 1000)
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET data = replace(data, 'hello', 'HELLO') WHERE seq IN (7, 9)")
    db.commit()
    db.close()
    report = salvage(path, tmp_path / "new.db")
    assert report.copied == 998 and report.lost == [7, 9] and report.unreadable_ranges == []
    assert report.expected == 1000 and report.replay is not None and report.replay.ok
    fresh = SQLiteEventStore(tmp_path / "new.db", project)
    assert fresh.last_seq() == 1000 and replay(fresh).ok
    fresh.close()


def test_salvage_reads_what_survives_of_a_truncated_log(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _log(path, 3000)
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size * 2 // 3)
    report = salvage(path, tmp_path / "new.db")
    assert 1000 < report.copied < 3000 and report.expected in (None, 3000)
    assert report.replay is not None and report.replay.ok
    fresh = SQLiteEventStore(tmp_path / "new.db", project)
    seqs = [e.seq for e in fresh.read()]
    assert seqs[:1000] == list(range(1, 1001))  # the start of the log is intact
    fresh.close()
