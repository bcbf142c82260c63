"""The live bus's parts on their own: its messages (round trip, exact refusals), the
heartbeats that end a lost node's calls in the views (a clock of the test's), the
backoff, and the bridge's bounded queue with no server at all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import MappingProxyType

import pytest

from gateway.cluster.bridge import Backoff, ClusterBus
from gateway.cluster.peers import Peers
from gateway.cluster.wire import Batch, Beat, WireError
from orchestration.log.events import Event, EventBus, EventRecorder
from tests.bus_server import BusServer


def event(seq: int, session: str, type_: str, node: str | None = "node-a") -> Event:
    return Event(seq, 1000.0 + seq, session, type_, MappingProxyType({"n": seq}), node=node)


def test_a_batch_round_trips_with_its_node() -> None:
    events = [event(1, "s1", "session.started", None), event(2, "s1", "stt.final", None)]
    parsed = Batch.parse(Batch.encode("node-a", events))
    assert parsed.node == "node-a"
    assert [e.to_dict() for e in parsed.events] == [
        {**e.to_dict(), "node": "node-a"} for e in events]


@pytest.mark.parametrize(("raw", "why"), [
    (b"{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
           "(char 1)"),
    (b"[]", "not a JSON object"),
    (b'{"v": 2, "node": "a", "events": []}', "unknown version 2 (this node speaks 1)"),
    (b'{"v": 1, "events": []}', "'node' must be a non-empty string"),
    (b'{"v": 1, "node": "a", "events": {}}', "'events' must be a list"),
    (b'{"v": 1, "node": "a", "events": [{"seq": "1", "ts": 1, "session_id": "s", '
     b'"type": "t", "data": {}}]}', "event 'seq' must be an integer"),
    (b'{"v": 1, "node": "a", "events": [{"seq": 1, "ts": 1, "session_id": "s", '
     b'"type": "t", "data": []}]}', "event 'data' must be an object"),
])
def test_a_malformed_batch_is_refused_with_the_reason(raw: bytes, why: str) -> None:
    with pytest.raises(WireError) as caught:
        Batch.parse(raw)
    assert str(caught.value) == why


def test_a_beat_round_trips_and_a_bad_one_is_refused() -> None:
    beat = Beat("node-b", frozenset({"s2", "s1"}), 2.0)
    assert Beat.parse(beat.encode()) == beat
    with pytest.raises(WireError, match="'every_s' must be a positive number"):
        Beat.parse(b'{"v": 1, "node": "b", "live": [], "every_s": 0}')
    with pytest.raises(WireError, match="'live' must be a list of session ids"):
        Beat.parse(b'{"v": 1, "node": "b", "live": [1], "every_s": 2}')


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_call_its_node_no_longer_lists_is_ended_as_lost() -> None:
    peers = Peers(clock=Clock())
    peers.saw(event(7, "s1", "stt.final"))
    peers.saw(event(3, "s2", "session.started"))
    ends = peers.beat(Beat("node-a", frozenset({"s2"}), 2.0))
    assert [(e.session_id, e.type, e.seq, e.node, e.data["lost"]) for e in ends] == [
        ("s1", "session.ended", 8, "node-a", True)]  # after the last seq the views saw
    assert peers.beat(Beat("node-a", frozenset({"s2"}), 2.0)) == []


def test_a_node_that_misses_three_beats_is_forgotten_with_its_calls() -> None:
    clock = Clock()
    peers = Peers(clock=clock, missed_beats=3)
    peers.beat(Beat("node-a", frozenset(), 2.0))
    peers.saw(event(1, "s1", "session.started"))
    clock.now = 6.0
    assert peers.expired() == []
    clock.now = 6.5
    assert [e.session_id for e in peers.expired()] == ["s1"]
    assert peers.describe() == []


def test_an_ended_call_is_not_ended_again_and_losing_the_bus_ends_the_rest() -> None:
    peers = Peers(clock=Clock())
    peers.saw(event(1, "s1", "session.started"))
    peers.saw(event(2, "s1", "session.ended"))
    peers.saw(event(1, "s2", "session.started", node="node-b"))
    ends = peers.forget_all("this node lost the live bus")
    assert [(e.session_id, e.node, e.data["reason"]) for e in ends] == [
        ("s2", "node-b", "this node lost the live bus")]


def test_backoff_doubles_to_its_ceiling_with_jitter_and_resets() -> None:
    backoff = Backoff(first=0.25, most=2.0, rng=lambda: 0.5)  # 0.5: no jitter
    assert [backoff.wait() for _ in range(6)] == pytest.approx([0.25, 0.5, 1.0, 2.0, 2.0, 2.0])
    backoff.reset()
    assert backoff.wait() == pytest.approx(0.25)
    low, high = Backoff(1.0, 1.0, rng=lambda: 0.0), Backoff(1.0, 1.0, rng=lambda: 1.0)
    assert (low.wait(), high.wait()) == pytest.approx((0.8, 1.2))


def test_emitting_never_waits_for_the_bus_and_a_full_queue_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No server listens on the port: the bridge is down, events queue up to the limit,
    the oldest go first and are counted, and the down state is said once."""
    caplog.set_level(logging.WARNING, "gateway.cluster.bridge")
    bus = EventBus()
    recorder = EventRecorder(bus)
    cluster = ClusterBus(bus, "nats://127.0.0.1:9", "node-a", queue_limit=5,
                         backoff=Backoff(0.05, 0.1))
    cluster.start()
    try:
        deadline = time.monotonic() + 30
        while cluster.status != "down":
            assert time.monotonic() < deadline, cluster.describe()
            time.sleep(0.02)
        for i in range(12):
            bus.emit("s1", "stt.final", {"i": i})
        assert len(recorder.events) == 12  # every emit went to the local observers
        assert cluster.queued() == 5 and cluster.counts["dropped"] == 7
        assert [e.data["i"] for e in cluster._queue] == [7, 8, 9, 10, 11]
        assert all(e.node == "node-a" for e in recorder.events)
        while cluster.counts["connects"] == 0 and time.monotonic() < deadline - 25:
            time.sleep(0.05)  # a few more failed attempts: still one line
    finally:
        cluster.stop()
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in caplog.records]
    assert "calls are not affected" in down[0].getMessage()
    assert cluster.status == "stopped"


def test_relayed_events_reach_only_the_views() -> None:
    bus = EventBus()
    local, views = EventRecorder(bus), list[Event]()
    bus.subscribe(views.append, remote=True)
    bus.emit("mine", "session.started")
    bus.relay(event(41, "theirs", "session.started"))
    assert [e.session_id for e in local.events] == ["mine"]
    assert [(e.session_id, e.seq, e.node) for e in views] == [
        ("mine", 1, None), ("theirs", 41, "node-a")]


def test_the_bus_setting_is_checked_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from gateway.config import Settings

    with pytest.raises(ValidationError, match="bus_url must start with nats:// or tls://"):
        Settings(bus_url="redis://127.0.0.1:6379/0")
    with pytest.raises(ValidationError, match="node_id"):
        Settings(node_id="a node with spaces")
    monkeypatch.setenv("VOXGATE_BUS_URL", "nats://bus.internal:4222")
    monkeypatch.setenv("VOXGATE_NODE_ID", "gw-1")
    assert (Settings().bus_url, Settings().node_id) == ("nats://bus.internal:4222", "gw-1")
    monkeypatch.setenv("VOXGATE_BUS_URL", "")
    assert Settings().bus_url is None  # empty: in-process only, as unset


def test_a_call_ended_as_lost_then_by_its_node_is_listed_once() -> None:
    """The bus came back: the real end follows the one the views made up; the call is
    listed once among the ended, with its real reason."""
    from gateway.api.sessions import SessionTracker

    bus = EventBus()
    tracker = SessionTracker(bus)
    bus.relay(event(1, "s1", "session.started"))
    peers = Peers(clock=Clock())
    peers.saw(event(1, "s1", "session.started"))
    for end in peers.forget_all("this node lost the live bus"):
        bus.relay(end)
    assert tracker.summary("s1")["end_reason"] == "this node lost the live bus"  # type: ignore[index]
    bus.relay(Event(5, 1005.0, "s1", "session.ended",
                    MappingProxyType({"reason": "caller hung up"}), node="node-a"))
    ended = tracker.snapshot()["ended"]
    assert [(s["id"], s["end_reason"]) for s in ended] == [("s1", "caller hung up")]


def test_a_batch_over_the_server_limit_is_split_and_an_event_over_it_dropped(
        bus_server: BusServer) -> None:
    """NATS refuses a message over its max_payload (1 MB by default): the bridge splits a
    batch until each part fits and drops (and counts) a single event that cannot; the
    connection is not given up for it."""
    a_bus, b_bus = EventBus(), EventBus()
    got: list[Event] = []
    b_bus.subscribe(got.append, remote=True)
    a = ClusterBus(a_bus, bus_server.url, "node-a", beat_s=0.2)
    b = ClusterBus(b_bus, bus_server.url, "node-b", beat_s=0.2)
    a.start()
    b.start()
    try:
        wait_for(lambda: any(p["node"] == "node-a" for p in b.peers.describe()))
        for i in range(3):
            a_bus.emit("big", "note", {"text": "x" * 600_000, "i": i})
        a_bus.emit("big", "note", {"text": "y" * 1_500_000, "i": 3})
        a_bus.emit("big", "session.ended", {"reason": "done"})
        wait_for(lambda: any(e.type == "session.ended" for e in got))
    finally:
        a.stop()
        b.stop()
    assert [e.data["i"] for e in got if e.type == "note"] == [0, 1, 2]
    assert a.counts["dropped"] == 1 and a.counts["connects"] == 1


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
