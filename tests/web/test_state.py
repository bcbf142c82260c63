"""``WS /ws/state`` and ``/api/sessions`` against the real server: snapshots for late
viewers, live events without gaps or repeats, filtering, finished calls from the log."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from gateway.api.state import _Viewer
from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult
from gateway.server import ServerThread

pytestmark = pytest.mark.slow


def ws_url(server: ServerThread, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/ws/state" + query


async def recv_json(ws: Any) -> dict[str, Any]:
    async with asyncio.timeout(5.0):
        message: dict[str, Any] = json.loads(await ws.recv())
    return message


async def events_until(ws: Any, session: str, last_type: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        message = await recv_json(ws)
        if message["type"] == "event" and message["event"]["session_id"] == session:
            seen.append(message["event"])
            if message["event"]["type"] == last_type:
                return seen


def test_a_late_viewer_gets_a_snapshot_then_every_later_event_once(
    gateway_server: ServerThread,
) -> None:
    bus = gateway_server.runtime.bus
    sid = "late-viewer-1"
    bus.emit(sid, "session.started", {"protocol": "twilio", "call_sid": "CA77", "caller": "+1555"})
    bus.emit(sid, "agent.state", {"state": "listening", "previous": "thinking"})
    bus.emit(sid, "stt.final", {"text": "hello there"})

    async def watch() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with websockets.connect(ws_url(gateway_server)) as ws:
            snapshot = await recv_json(ws)
            bus.emit(sid, "agent.state", {"state": "thinking", "previous": "listening"})
            bus.emit(sid, "session.ended", {"reason": "caller hung up"})
            return snapshot, await events_until(ws, sid, "session.ended")

    snapshot, later = asyncio.run(watch())
    assert snapshot["type"] == "snapshot"
    mine = [s for s in snapshot["sessions"] if s["id"] == sid]
    assert len(mine) == 1
    s = mine[0]
    assert (s["state"], s["caller"], s["call_sid"], s["turns"], s["live"]) == (
        "listening", "+1555", "CA77", 1, True,
    )
    assert [e["type"] for e in s["recent"]] == ["session.started", "agent.state", "stt.final"]
    assert [e["type"] for e in later] == ["agent.state", "session.ended"]
    assert later[0]["seq"] > s["last_seq"]


def test_the_stream_is_filtered_by_session(gateway_server: ServerThread) -> None:
    bus = gateway_server.runtime.bus

    async def watch() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with websockets.connect(ws_url(gateway_server, "?session=only-me")) as ws:
            snapshot = await recv_json(ws)
            bus.emit("someone-else", "session.started", {"protocol": "browser"})
            bus.emit("only-me", "session.started", {"protocol": "browser"})
            bus.emit("someone-else", "session.ended", {"reason": "x"})
            bus.emit("only-me", "session.ended", {"reason": "y"})
            got: list[dict[str, Any]] = []
            while len(got) < 2:
                message = await recv_json(ws)
                if message["type"] == "event":
                    got.append(message["event"])
            return snapshot, got

    snapshot, got = asyncio.run(watch())
    assert all(s["id"] == "only-me" for s in snapshot["sessions"] + snapshot["ended"])
    assert [(e["session_id"], e["type"]) for e in got] == [
        ("only-me", "session.started"), ("only-me", "session.ended"),
    ]


def test_ping_is_answered(gateway_server: ServerThread) -> None:
    async def ping() -> dict[str, Any]:
        async with websockets.connect(ws_url(gateway_server)) as ws:
            await recv_json(ws)
            await ws.send('{"type": "ping"}')
            while True:
                message = await recv_json(ws)
                if message["type"] == "pong":
                    return message

    assert asyncio.run(ping()) == {"type": "pong"}


def test_a_real_call_is_listed_with_its_summary_and_events(
    gateway_server: ServerThread, real_call: CallResult, call_events: list[dict[str, Any]]
) -> None:
    sid = real_call.session_id
    listed = httpx.get(f"{gateway_server.url}/api/sessions").json()
    mine = [s for s in listed if s["id"] == sid]
    assert len(mine) == 1
    for key in ("id", "call_sid", "caller", "started_at", "ended_at", "state", "agent"):
        assert key in mine[0]
    one = httpx.get(f"{gateway_server.url}/api/sessions/{sid}").json()
    assert one["state"] == "ended" and one["live"] is False
    assert one["caller"] == call_events[0]["data"]["caller"]  # as the session announced it
    assert one["turns"] == 1 and one["latency"]["total_ms"] > 0
    assert one["ended_at"] > one["started_at"]
    types = [e["type"] for e in call_events]
    assert types[0] == "session.started" and types[-1] == "session.ended"
    assert "stt.final" in types and "turn.latency" in types
    seqs = [e["seq"] for e in call_events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    seen = [e.event.type for e in real_call.events]
    assert seen == types[: len(seen)], "the API gives what the caller saw, in its order"
    assert httpx.get(f"{gateway_server.url}/api/sessions?status=live").json() == [
        s for s in httpx.get(f"{gateway_server.url}/api/sessions").json() if s["live"]
    ]


def test_the_agents_flows_are_graphs(gateway_server: ServerThread) -> None:
    names = {f["name"] for f in httpx.get(f"{gateway_server.url}/api/flows").json()}
    assert {"support", "scheduling", "workspace", "ops"} <= names
    flow = httpx.get(f"{gateway_server.url}/api/flows/scheduling").json()
    graph = flow["graph"]
    ids = {n["id"] for n in graph["nodes"]}
    assert graph["start"] in ids
    assert all(e["from"] in ids and e["to"] in ids for e in graph["edges"])
    assert flow["mermaid"].startswith("stateDiagram-v2")
    missing = httpx.get(f"{gateway_server.url}/api/flows/nope")
    assert (missing.status_code, missing.json()) == (404, {"detail": "unknown flow 'nope'"})


def test_unknown_sessions_are_404(gateway_server: ServerThread) -> None:
    for path in ("/api/sessions/nope", "/api/sessions/nope/events"):
        response = httpx.get(gateway_server.url + path)
        assert response.status_code == 404
        assert response.json() == {"detail": "unknown session 'nope'"}
    assert httpx.get(gateway_server.url + "/api/sessions?limit=0").status_code == 422


def test_finished_calls_come_from_the_log_after_a_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with ServerThread(create_app(settings)) as first:
        bus = first.runtime.bus
        started = {"protocol": "twilio", "call_sid": "CA1", "caller": "+1"}
        bus.emit("old", "session.started", started)
        bus.emit("old", "stt.final", {"text": "hi"})
        bus.emit("old", "session.ended", {"reason": "bye"})
        before = httpx.get(f"{first.url}/api/sessions/old/events").json()
    with ServerThread(create_app(settings)) as second:  # a new process's bus knows nothing
        listed = httpx.get(f"{second.url}/api/sessions").json()
        assert [s["id"] for s in listed] == ["old"]
        assert listed[0]["state"] == "ended" and listed[0]["call_sid"] == "CA1"
        after = httpx.get(f"{second.url}/api/sessions/old/events").json()
    assert [e["type"] for e in after] == ["session.started", "stt.final", "session.ended"]
    assert [(e["seq"], e["type"], e["data"]) for e in after] == [
        (e["seq"], e["type"], e["data"]) for e in before
    ]
    assert all("log_seq" in e for e in after)


def test_workflow_runs_are_in_the_snapshot_and_streamed(gateway_server: ServerThread) -> None:
    async def watch() -> tuple[dict[str, Any], dict[str, Any]]:
        async with websockets.connect(ws_url(gateway_server)) as ws:
            await recv_json(ws)
            async with httpx.AsyncClient() as client:
                created = await client.post(
                    f"{gateway_server.url}/api/workflows/customer_onboarding/runs",
                    json={"input": {"company": "Acme", "contact": "ann@acme.test"}},
                )
            run = created.json()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = await recv_json(ws)
                if message["type"] == "run" and message["run"]["id"] == run["id"]:
                    return run, message
            raise AssertionError("no run message")

    run, message = asyncio.run(watch())
    assert message["run"]["name"] == "customer_onboarding"
    assert message["event"]["stream"] == f"wf:{run['id']}"

    async def late() -> dict[str, Any]:
        async with websockets.connect(ws_url(gateway_server)) as ws:
            return await recv_json(ws)

    snapshot = asyncio.run(late())
    runs = {r["id"]: r for r in snapshot["runs"]}
    assert runs[run["id"]]["state"] == run["state"]
    assert runs[run["id"]]["status"] == "waiting"


async def test_a_viewer_that_falls_behind_is_resynchronised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.api.state

    monkeypatch.setattr(gateway.api.state, "QUEUE_LIMIT", 3)
    viewer = _Viewer(asyncio.get_running_loop(), None)
    for seq in range(1, 6):
        viewer.on_event({"seq": seq, "ts": 0.0, "session_id": "s", "type": "x", "data": {}})
    await asyncio.sleep(0)
    assert viewer.overflowed and viewer.queue.qsize() == 3  # the sender will send a snapshot
