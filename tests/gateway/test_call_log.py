"""When Twilio asks what follows a stream that ended, the answer comes from the shared log:
carry on a stream that broke, hang up one that ended (tests/gateway/test_resume_across_nodes.py
runs the whole thing across two nodes). A real SQLite log and the real BusLog writer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from gateway.app import create_app
from gateway.call_log import CallLog
from gateway.config import Settings
from gateway.server import ServerThread
from gateway.transports.inbox import VANISHED
from gateway.transports.twilio_webhooks import MAX_RESUMES, dropped
from orchestration.log.buslog import attach_bus
from orchestration.log.events import EventBus
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import NewEvent
from orchestration.log.views import project
from tests.gateway.test_capacity import start


def _log(tmp_path: Path, calls: dict[str, list[tuple[str, dict[str, Any]]]]) -> CallLog:
    store = SQLiteEventStore(tmp_path / "events.db", project)
    for session, events in calls.items():
        store.append([NewEvent(f"call:{session}", t, d) for t, d in events])
    log = CallLog()
    log.attach(store, None)
    return log


STARTED = ("session.started", {"protocol": "twilio", "call_sid": "CA1"})


def test_a_stream_that_broke_is_carried_on_one_that_ended_is_not(tmp_path: Path) -> None:
    log = _log(tmp_path, {
        "died": [STARTED, ("agent.reply", {"text": "Tuesday at 3 PM, shall I book it?"})],
        "vanished": [STARTED, ("session.ended", {"reason": VANISHED})],
        "hung-up": [STARTED, ("session.ended", {"reason": "caller hung up"})],
        "goodbye": [STARTED, ("agent.goodbye", {}),
                    ("session.ended", {"reason": f"{VANISHED} during the goodbye"})],
        # carried on from a call that was itself carried on twice: the count goes on
        "again": [STARTED, ("session.resumed", {"from": "x", "conversation": {
            "resumed": MAX_RESUMES - 1, "origin": "first", "slots": {"time": "15:00"}}})],
    })
    assert dropped(log, "died", "CA1")  # its node died: no session.ended in the log
    assert dropped(log, "vanished", "CA1")  # the connection vanished
    assert not dropped(log, "hung-up", "CA1")
    assert not dropped(log, "goodbye", "CA1")  # the agent had ended the conversation
    assert not dropped(log, "again", "CA1")  # carried on too often: hang up
    # only the phone call that session belongs to may carry it on
    assert not dropped(log, "died", "CA2")
    assert not dropped(log, "unknown", "CA1")
    again = (log.call("again") or {})["conversation"]
    assert (again["resumed"], again["origin"], again["slots"]) == (
        MAX_RESUMES, "first", {"time": "15:00"})
    assert log.started("died") == dict(STARTED[1])
    assert log.end_reason("hung-up") == "caller hung up" and log.end_reason("died") is None


def test_durable_returns_once_the_events_are_in_the_log(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.db", project)
    bus = EventBus()
    sink = attach_bus(bus, store)
    log = CallLog()
    log.attach(store, sink)
    bus.emit("s1", "session.started", {"protocol": "twilio", "call_sid": "CA9"})
    asyncio.run(log.durable())
    assert (log.started("s1") or {}).get("call_sid") == "CA9"
    log.detach()
    assert log.call("s1") is None and log.started("s1") is None  # no log: nothing to resume
    sink.close()
    store.close()


def test_a_stream_cannot_take_a_session_the_log_already_has(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, agent="basic")
    with ServerThread(create_app(settings)) as server:
        ws_url = server.url.replace("http://", "ws://") + "/ws/twilio"

        async def stream(call_sid: str) -> str:
            async with connect(ws_url) as ws:
                await ws.send(start(call_sid, session="00000000000000aa"))
                for _ in range(100):  # bounded: the session starts within a few loop turns
                    if server.runtime.sessions:
                        break
                    await asyncio.sleep(0.05)
                (session,) = server.runtime.sessions
                await ws.send(json.dumps({"event": "stop", "sequenceNumber": "2",
                                          "streamSid": "MZ" + call_sid,
                                          "stop": {"accountSid": "AC1", "callSid": call_sid}}))
            for _ in range(100):
                if not server.runtime.sessions:
                    break
                await asyncio.sleep(0.05)
            return session

        # the first stream gets the session it names (another node may have promised it)
        assert asyncio.run(stream("CA1")) == "00000000000000aa"
        # a second stream naming it again gets a fresh one: the log holds that call already
        assert asyncio.run(stream("CA2")) != "00000000000000aa"
