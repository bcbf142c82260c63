"""Bad input at the edges of the real server: each case gets a clear error or close code and
a log line, and a good call running at the same time is answered all the same."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread
from gateway.transports import browser_protocol as bp
from gateway.transports.twilio import MAX_BAD_MESSAGES
from orchestration.log.events import EventRecorder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"), start_timeout_s=1.0, agent="basic"
    )
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture
def recorder(server: ServerThread) -> Iterator[EventRecorder]:
    rec = EventRecorder(server.runtime.bus)
    yield rec
    rec.close()


def ws_url(server: ServerThread, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def start_message(stream_sid: str = "MZ1", call_sid: str = "CA1") -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "accountSid": "AC1",
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": {"caller": "+15550001111"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


async def closed_with(ws: ClientConnection, limit_s: float = 5.0) -> tuple[int | None, list[Any]]:
    """Read until the server closes; return its close code and the JSON it sent."""
    received: list[Any] = []
    try:
        async with asyncio.timeout(limit_s):
            async for message in ws:
                if isinstance(message, str):
                    received.append(json.loads(message))
    except ConnectionClosed:
        pass
    return ws.close_code, received


async def with_good_call(server: ServerThread, bad: Any) -> Any:
    """Run ``bad`` while a good browser call is in progress; the good call must succeed."""
    pcm, _ = load_prompt("conf-locked")
    good = asyncio.create_task(run_call(pcm, "browser", server.url, tail_s=10.0))
    outcome = await bad
    result = await good
    assert result.user_transcripts(), "the good call was disturbed"
    assert any("I heard" in u.text for u in result.agent_replies())
    return outcome


# --- Twilio --------------------------------------------------------------------------


async def twilio_garbage_before_start(server: ServerThread) -> int | None:
    async with connect(ws_url(server, "/ws/twilio")) as ws:
        await ws.send("{not json")
        code, _ = await closed_with(ws)
        return code


def test_twilio_malformed_json_before_start(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    code = asyncio.run(with_good_call(server, twilio_garbage_before_start(server)))
    assert code == 1008
    assert "malformed JSON" in caplog.text


async def twilio_never_starts(server: ServerThread) -> int | None:
    async with connect(ws_url(server, "/ws/twilio")) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        code, _ = await closed_with(ws, limit_s=5.0)
        return code


def test_twilio_stream_without_start_is_closed(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert asyncio.run(twilio_never_starts(server)) == 1008
    assert "no start" in caplog.text


async def twilio_bad_messages_mid_call(server: ServerThread, count: int) -> int | None:
    async with connect(ws_url(server, "/ws/twilio")) as ws:
        await ws.send(start_message(call_sid=f"CA-bad-{count}"))
        bad = [
            "{oops",
            json.dumps({"event": "flurble", "streamSid": "MZ1"}),
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "2",
                    "streamSid": "MZ1",
                    "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "@@@"},
                }
            ),
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": "3",
                    "streamSid": "MZ1",
                    "media": {
                        "track": "inbound",
                        "chunk": "2",
                        "timestamp": "20",
                        "payload": base64.b64encode(b"\xff" * 40_000).decode(),
                    },
                }
            ),
        ]
        for i in range(count):
            await ws.send(bad[i % len(bad)])
        if count <= MAX_BAD_MESSAGES:
            await ws.send(
                json.dumps(
                    {
                        "event": "stop",
                        "sequenceNumber": "9",
                        "streamSid": "MZ1",
                        "stop": {"accountSid": "AC1", "callSid": "CA1"},
                    }
                )
            )
        code, _ = await closed_with(ws)
        return code


def test_twilio_bad_messages_are_reported_and_skipped(
    server: ServerThread, recorder: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    asyncio.run(with_good_call(server, twilio_bad_messages_mid_call(server, 4)))
    errors = [e.data["error"] for e in recorder.of_type("gateway.bad_message")]
    assert any(e.startswith("malformed JSON") for e in errors)
    assert 'unknown event "flurble"' in errors
    assert any("media.payload" in e and "base64" in e for e in errors), errors
    assert any("too large" in e for e in errors), errors
    ended = [e for e in recorder.of_type("session.ended") if e.data["reason"] == "caller hung up"]
    assert ended, "the call with bad messages did not end cleanly on stop"
    assert "bad twilio message" in caplog.text


def test_twilio_stream_of_garbage_is_closed(server: ServerThread) -> None:
    assert asyncio.run(twilio_bad_messages_mid_call(server, MAX_BAD_MESSAGES + 1)) == 1008


async def twilio_binary(server: ServerThread) -> int | None:
    async with connect(ws_url(server, "/ws/twilio")) as ws:
        await ws.send(start_message())
        await ws.send(b"\x00\x01")
        code, _ = await closed_with(ws)
        return code


def test_twilio_binary_frame_is_a_protocol_error(server: ServerThread) -> None:
    assert asyncio.run(twilio_binary(server)) == 1008


# --- browser -------------------------------------------------------------------------


async def browser_case(server: ServerThread, *frames: str | bytes) -> tuple[int | None, list[Any]]:
    async with connect(ws_url(server, "/ws/browser"), max_size=None) as ws:
        for frame in frames:
            await ws.send(frame)
        return await closed_with(ws)


START = json.dumps({"type": "start", "sample_rate": 16000})


BROWSER_CASES: dict[str, tuple[tuple[str | bytes, ...], int, str]] = {
    "audio-before-start": ((b"\0" * 640,), bp.CLOSE_POLICY_VIOLATION, bp.ERR_NOT_STARTED),
    "malformed-json": (("{nope",), bp.CLOSE_INVALID_DATA, bp.ERR_MALFORMED_JSON),
    "odd-bytes": ((START, b"\0" * 641), bp.CLOSE_INVALID_DATA, bp.ERR_BAD_AUDIO),
    "sample-rate": ((json.dumps({"type": "start", "sample_rate": 44100}),),
                    bp.CLOSE_UNSUPPORTED_DATA, bp.ERR_SAMPLE_RATE),
    "oversized": ((START, b"\0" * (70 * 1024)), bp.CLOSE_MESSAGE_TOO_BIG, bp.ERR_TOO_LARGE),
    "start-twice": ((START, START), bp.CLOSE_POLICY_VIOLATION, bp.ERR_ALREADY_STARTED),
    "no-start": ((), bp.CLOSE_POLICY_VIOLATION, bp.ERR_NOT_STARTED),  # timed out
}


def test_browser_protocol_errors(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    # every bad connection at once, during one good call (one real-time call instead of
    # seven: ~90 s less of the suite), each checked by name
    caplog.set_level(logging.WARNING)

    async def all_cases() -> list[tuple[int | None, list[Any]]]:
        return list(await asyncio.gather(
            *(browser_case(server, *frames) for frames, _, _ in BROWSER_CASES.values())))

    outcomes = asyncio.run(with_good_call(server, all_cases()))
    for (name, (_, close, code)), (close_code, received) in zip(
            BROWSER_CASES.items(), outcomes, strict=True):
        assert close_code == close, (name, close_code, received)
        errors = [m for m in received if m["type"] == "error"]
        assert errors and errors[-1]["code"] == code, (name, received)
        assert errors[-1]["message"], name
    assert "browser" in caplog.text or "session" in caplog.text


async def browser_unknown_type(server: ServerThread) -> list[Any]:
    async with connect(ws_url(server, "/ws/browser")) as ws:
        await ws.send(START)
        await ws.send(json.dumps({"type": "hello"}))
        await ws.send(json.dumps({"type": "ping"}))
        seen: list[Any] = []
        async with asyncio.timeout(5):
            while not any(m.get("type") == "pong" for m in seen):
                message = await ws.recv()
                if isinstance(message, str):
                    seen.append(json.loads(message))
        await ws.send(json.dumps({"type": "stop"}))
        _, rest = await closed_with(ws)
        return seen + rest


def test_browser_unknown_type_is_reported_not_fatal(server: ServerThread) -> None:
    messages = asyncio.run(browser_unknown_type(server))
    assert any(m["type"] == "error" and m["code"] == bp.ERR_UNKNOWN_TYPE for m in messages)
    assert any(m["type"] == "pong" for m in messages)
    assert any(m["type"] == "end" for m in messages)


async def browser_vanishes_mid_reply(server: ServerThread) -> None:
    async with connect(ws_url(server, "/ws/browser")) as ws:
        await ws.send(START)
        async with asyncio.timeout(10):
            while not isinstance(await ws.recv(), bytes):
                pass  # wait until the greeting's audio is flowing
        # drop the TCP connection without a closing handshake
        ws.transport.abort()


def test_browser_client_vanishing_mid_reply(server: ServerThread, recorder: EventRecorder) -> None:
    asyncio.run(with_good_call(server, browser_vanishes_mid_reply(server)))
    reasons = [e.data["reason"] for e in recorder.of_type("session.ended")]
    assert "caller vanished (connection lost, no close frame)" in reasons, reasons
    assert not server.runtime.sessions, "a session outlived its connection"
