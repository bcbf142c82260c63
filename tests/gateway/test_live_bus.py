"""Two gateway nodes on one live bus (a real nats-server on loopback): a real call on node
A is live in node B's ``/ws/state`` and ``/api/sessions``, stamped with its node, never
echoed back, never logged by B; the server killed mid-call leaves the call untouched,
says so once per node (log, ``/api/cluster``, ``/metrics``), and both nodes come back on
their own once the server is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult, run_call
from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.server import ServerThread
from gateway.servers.serve_process import ServeProcess
from orchestration.log.events import EventRecorder
from tests.bus_server import BusServer

pytestmark = pytest.mark.slow


def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def cluster(node: ServerThread) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{node.url}/api/cluster").json()
    return found


def hears(node: ServerThread, other: str) -> bool:
    c = cluster(node)
    return c["status"] == "connected" and any(p["node"] == other for p in c["peers"])


@contextlib.contextmanager
def two_nodes(bus_url: str, tmp_path: Path, database_url: str | None = None,
              ) -> Iterator[tuple[ServerThread, ServerThread]]:
    with ExitStack() as stack:
        started = []
        for name in ("node-a", "node-b"):
            settings = Settings(data_dir=tmp_path / name, agent="basic", bus_url=bus_url,
                                node_id=name, database_url=database_url)
            settings.voice.turn.reprompt_after_s = 30.0  # no reprompts mid-test
            started.append(stack.enter_context(ServerThread(create_app(settings))))
        a, b = started
        until(lambda: hears(a, "node-b") and hears(b, "node-a"))
        yield a, b


@pytest.fixture
def nodes(bus_server: BusServer, tmp_path: Path) -> Iterator[tuple[ServerThread, ServerThread]]:
    with two_nodes(bus_server.url, tmp_path) as both:
        yield both


def answered(result: CallResult) -> None:
    _, reference = load_prompt("conf-locked")
    heard = result.user_transcripts()
    assert heard and word_error_rate(reference, heard[0].text) <= 0.2, (heard, result.errors)
    assert any("I heard" in u.text for u in result.agent_replies())
    assert result.ended_by == "caller" and result.session_id is not None


async def call_watched_from(a: ServerThread, b: ServerThread,
                            ) -> tuple[CallResult, list[dict[str, Any]], list[dict[str, Any]]]:
    """A real call on ``a`` while a viewer watches ``b``: (the call, the events ``b``'s
    viewer got for it, ``b``'s /api/sessions once the call was live there)."""
    pcm, _ = load_prompt("conf-locked")
    seen: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    async with websockets.connect(b.url.replace("http://", "ws://") + "/ws/state") as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        call = asyncio.ensure_future(run_call(pcm, "browser", a.url, tail_s=20.0))
        async with httpx.AsyncClient() as http:
            while True:
                async with asyncio.timeout(120):
                    message = json.loads(await ws.recv())
                if message["type"] != "event":
                    continue
                event = message["event"]
                seen.append(event)
                if event["type"] == "session.started" and not listed:
                    listed = (await http.get(f"{b.url}/api/sessions?status=live")).json()
                if event["type"] == "session.ended":
                    break
        result = await call
    return result, [e for e in seen if e["session_id"] == result.session_id], listed


def test_a_call_on_node_a_is_live_in_node_b_views(
        nodes: tuple[ServerThread, ServerThread]) -> None:
    a, b = nodes
    on_a = EventRecorder(a.runtime.bus)
    result, seen, listed = asyncio.run(call_watched_from(a, b))
    answered(result)
    sid = result.session_id
    emitted = [e.to_dict() for e in on_a.events if e.session_id == sid]
    # every event of the call, in order, once, as A emitted it, stamped with A's node
    assert seen == emitted and all(e["node"] == "node-a" for e in seen)
    assert [s["id"] for s in listed if s["live"]] == [sid]  # live in B's list mid-call
    summary_b = httpx.get(f"{b.url}/api/sessions/{sid}").json()
    summary_a = httpx.get(f"{a.url}/api/sessions/{sid}").json()
    assert summary_b == summary_a and summary_b["live"] is False and summary_b["turns"] >= 1
    # B shows it from the bus, not from a log of its own; nothing went back to A
    assert all("log_seq" not in e for e in httpx.get(f"{b.url}/api/sessions/{sid}/events")
               .json())
    assert cluster(b)["published"] == 0 and cluster(a)["received"] == 0


def test_a_masked_event_leaves_its_node_masked(
        nodes: tuple[ServerThread, ServerThread]) -> None:
    a, b = nodes
    a.runtime.bus.emit("masked-1", "session.started", {"caller": "+15551234567"})
    until(lambda: httpx.get(f"{b.url}/api/sessions/masked-1").status_code == 200)
    assert httpx.get(f"{b.url}/api/sessions/masked-1").json()["caller"] == "[phone ...4567]"


def test_a_node_that_stops_has_its_calls_ended_in_the_other_views_at_once(
        nodes: tuple[ServerThread, ServerThread]) -> None:
    """Node A's bridge stops (the process shutting down): its last heartbeat lists no
    call, and node B ends A's live call in its views as lost."""
    a, b = nodes
    a.runtime.bus.emit("orphan-1", "session.started", {"protocol": "twilio"})
    until(lambda: httpx.get(f"{b.url}/api/sessions/orphan-1").status_code == 200)
    assert httpx.get(f"{b.url}/api/sessions/orphan-1").json()["live"] is True
    a.app.state.cluster.stop()
    until(lambda: not httpx.get(f"{b.url}/api/sessions/orphan-1").json()["live"])
    ended = httpx.get(f"{b.url}/api/sessions/orphan-1").json()
    assert ended["end_reason"] == "node node-a no longer holds the call"


def test_a_killed_node_has_its_call_ended_in_the_other_views(
        bus_server: BusServer, tmp_path: Path) -> None:
    """`voxgate serve` as node A, SIGKILLed in the middle of a real call: it says nothing
    more, and after three missed heartbeats node B ends the call in its views as lost."""
    pcm, _ = load_prompt("conf-locked")
    settings = Settings(data_dir=tmp_path / "b", agent="basic", bus_url=bus_server.url,
                        node_id="node-b")
    with ServeProcess(tmp_path, VOXGATE_AGENT="basic", VOXGATE_BUS_URL=bus_server.url,
                      VOXGATE_NODE_ID="node-a") as a, \
            ServerThread(create_app(settings)) as b:
        until(lambda: hears(b, "node-a"))

        async def call_then_kill() -> str:
            call = asyncio.ensure_future(run_call(pcm, "browser", a.url, tail_s=20.0))
            live: list[str] = []

            def listed() -> bool:
                live[:] = [s["id"] for s in
                           httpx.get(f"{b.url}/api/sessions?status=live").json()]
                return bool(live)

            await asyncio.to_thread(until, listed)
            assert a.proc is not None
            a.proc.kill()
            with contextlib.suppress(Exception):  # the call's line went dead with its node
                await call
            return live[0]

        sid = asyncio.run(call_then_kill())
        until(lambda: not httpx.get(f"{b.url}/api/sessions/{sid}").json()["live"])
        ended = httpx.get(f"{b.url}/api/sessions/{sid}").json()
        assert ended["end_reason"] == "node node-a went silent on the live bus"
        assert all(p["node"] != "node-a" for p in cluster(b)["peers"])


def metric(node: ServerThread, name: str) -> float:
    for line in httpx.get(f"{node.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def said(caplog: pytest.LogCaptureFixture, words: str, node: str) -> int:
    return sum(words in r.getMessage() and f"node {node} " in r.getMessage()
               for r in caplog.records)


def test_the_bus_killed_mid_call_then_restarted(
        nodes: tuple[ServerThread, ServerThread], bus_server: BusServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "gateway.cluster.bridge")
    a, b = nodes
    pcm, _ = load_prompt("conf-locked")

    async def call_through_an_outage() -> CallResult:
        call = asyncio.ensure_future(run_call(pcm, "browser", a.url, tail_s=20.0))
        await asyncio.to_thread(until, lambda: bool(a.runtime.sessions))
        sid = next(iter(a.runtime.sessions))
        await asyncio.to_thread(
            until, lambda: httpx.get(f"{b.url}/api/sessions/{sid}").status_code == 200)
        bus_server.kill()  # mid-call: B shows it live, A is still talking
        return await call

    result = asyncio.run(call_through_an_outage())
    answered(result)  # the call went on as if nothing happened
    until(lambda: cluster(a)["status"] == "down" and cluster(b)["status"] == "down")
    assert metric(a, "voxgate_bus_connected") == 0
    health = httpx.get(f"{a.url}/healthz")
    assert health.status_code == 200 and health.json()["bus"] == "down"  # still takes calls
    lost = httpx.get(f"{b.url}/api/sessions/{result.session_id}").json()
    assert lost["live"] is False and lost["end_reason"] == "this node lost the live bus"
    assert said(caplog, "unreachable", "node-a") == 1
    assert said(caplog, "unreachable", "node-b") == 1

    bus_server.start()  # same port: both nodes find it again on their own
    until(lambda: hears(a, "node-b") and hears(b, "node-a"))
    assert metric(a, "voxgate_bus_connected") == 1
    assert said(caplog, "reachable again", "node-a") == 1
    assert said(caplog, "unreachable", "node-a") == 1  # the retries said nothing more
    a.runtime.bus.emit("after-outage", "session.started", {"protocol": "browser"})
    until(lambda: httpx.get(f"{b.url}/api/sessions/after-outage").status_code == 200)
    assert httpx.get(f"{b.url}/api/sessions/after-outage").json()["live"] is True


def test_a_signal_sent_to_either_node_reaches_the_run(
        bus_server: BusServer, pg_url: str, tmp_path: Path) -> None:
    """Workflow runs live in the shared log (PostgreSQL) and any node may take a run's
    lease: a run started through node A is signalled through node B, and A reads the
    outcome. (Call-bound runs take no signals: they move on the caller's turns.)"""
    with two_nodes(bus_server.url, tmp_path, database_url=pg_url) as (a, b):
        started = httpx.post(f"{a.url}/api/workflows/lead_qualification/runs",
                             json={"input": {"lead_id": "umbrella"}})
        assert started.status_code == 201, started.text
        run = started.json()
        assert (run["status"], run["state"]) == ("waiting", "review")
        sent = httpx.post(f"{b.url}/api/runs/{run['id']}/signals",
                          json={"event": "decision",
                                "data": {"role": "sales_manager", "approve": False}})
        assert sent.status_code == 200 and sent.json()["status"] == "succeeded", sent.text
        view = httpx.get(f"{a.url}/api/runs/{run['id']}").json()
        assert view["status"] == "succeeded" and view["output"]["verdict"] == "nurture"


def test_the_cluster_state_is_for_admins_and_off_without_the_setting(
        bus_server: BusServer, tmp_path: Path) -> None:
    from tests.security.test_auth import ADMIN, secure_settings

    bearer = {"authorization": f"Bearer {ADMIN}"}
    with ServerThread(create_app(secure_settings(tmp_path / "on", agent="basic",
                                                 bus_url=bus_server.url))) as on:
        assert httpx.get(f"{on.url}/api/cluster").status_code == 401
        until(lambda: httpx.get(f"{on.url}/api/cluster", headers=bearer)
              .json()["status"] == "connected")
        assert "voxgate_bus_connected 1.0" in httpx.get(f"{on.url}/metrics",
                                                        headers=bearer).text
    with ServerThread(create_app(secure_settings(tmp_path / "off", agent="basic"))) as off:
        assert httpx.get(f"{off.url}/api/cluster", headers=bearer).json() == {"status": "off"}
        assert httpx.get(f"{off.url}/healthz").json()["bus"] == "off"
        assert "voxgate_bus_" not in httpx.get(f"{off.url}/metrics", headers=bearer).text
