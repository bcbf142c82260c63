"""A node's cap on live calls (``max_sessions``): over it a phone call hears a short busy
message and is hung up before any stream opens, a stream that still finds the node full is
refused and its <Connect action> says the same, a browser call gets close 1013
(``capacity``); nothing half-starts. The real server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.phone import PhoneCall
from gateway.server import ServerThread
from tests.gateway.test_bad_input import closed_with

BUSY = "Sorry, all our lines are busy right now."


@pytest.fixture()
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), agent="basic",
                        max_sessions=1, start_timeout_s=0.5)
    with ServerThread(create_app(settings)) as running:
        yield running


def start(call_sid: str, **params: str) -> str:
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ" + call_sid,
                       "start": {"streamSid": "MZ" + call_sid, "accountSid": "AC1",
                                 "callSid": call_sid, "tracks": ["inbound"],
                                 "customParameters": {"caller": "+15550001111", **params},
                                 "mediaFormat": {"encoding": "audio/x-mulaw",
                                                 "sampleRate": 8000, "channels": 1}}})


def busy(twiml: str) -> bool:
    root = ET.fromstring(twiml)
    return (root.findtext("Say") or "").startswith(BUSY) and root.find("Hangup") is not None


def refusals(server: ServerThread) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("voxgate_limit_refusals") and \
                    sample.labels.get("limit") == "capacity":
                return sample.value
    return 0.0


def test_a_full_node_turns_phone_calls_away_with_a_busy_message(server: ServerThread) -> None:
    first = PhoneCall(call_sid="CA1").answer(server.url)
    assert first.stream is not None  # the one place, promised to this call's stream
    # a second call while the first one's stream is still on its way: no stream at all
    answer = httpx.post(f"{server.url}/twilio/voice", data={"CallSid": "CA2", "From": "+1"})
    assert busy(answer.text), answer.text
    assert server.runtime.sessions == {} and refusals(server) == 1

    async def streams() -> None:
        ws_url = server.url.replace("http://", "ws://") + "/ws/twilio"
        # a stream that was promised nothing finds the node full: refused before it starts
        async with connect(ws_url) as stray:
            await stray.send(start("CA3"))
            code, _ = await closed_with(stray)
        assert code == 1013 and server.runtime.sessions == {}
        # the promised stream opens
        async with connect(ws_url) as promised:
            await promised.send(start("CA1", session=first.parameters["session"]))
            for _ in range(100):  # bounded: the session starts within a few event-loop turns
                if server.runtime.sessions:
                    break
                await asyncio.sleep(0.05)
            assert list(server.runtime.sessions) == [first.parameters["session"]]
    asyncio.run(streams())
    # Twilio asks the refused stream's <Connect action>: the busy message, then a hang-up
    action = f"{server.url}/twilio/after-stream"
    assert busy(httpx.post(action, data={"CallSid": "CA3"}).text)
    assert not busy(httpx.post(action, data={"CallSid": "CA3"}).text)  # answered once
    assert refusals(server) == 2


def test_a_promise_lapses_when_its_stream_never_comes(server: ServerThread) -> None:
    assert PhoneCall(call_sid="CA1").answer(server.url).stream is not None
    assert PhoneCall(call_sid="CA2").answer(server.url).hangup  # full: promised to CA1
    later = None
    for _ in range(100):  # bounded: the promise lasts twice start_timeout_s
        later = PhoneCall(call_sid="CA2").answer(server.url)
        if later.stream is not None:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert later is not None and later.stream is not None
