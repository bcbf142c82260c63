"""The call client against a fake gateway on a loopback port.

``FakeGateway`` is a tiny websockets server that plays scripted agent audio with marks and
clears, records what the client sends back and when (on the same monotonic clock), and
streams bus events on ``/ws/state`` as the real gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from gateway.evaluation.client import (
    CallError,
    Segment,
    format_transcript,
    load_caller_audio,
    run_call,
    voiced_frames,
)
from gateway.evaluation.playback import PlaybackDevice
from gateway.transports import browser_protocol as bp
from gateway.transports import twilio_protocol as tp
from orchestration.log.events import Event
from voice.audio import level, ulaw_encode

SPEECH = Path("/usr/share/asterisk/sounds/en/agent-pass.wav")  # 8 kHz human speech, 3.3 s


def tone(ms: int, rate: int = 16000) -> bytes:
    n = rate * ms // 1000
    return b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
    )


def loud_frames(pcm: bytes) -> int:
    return sum(1 for i in range(0, len(pcm) - 639, 640) if level(pcm[i : i + 640]) > 0.01)


@dataclass
class Seen:
    """What the fake gateway saw, with times on the test's monotonic clock."""

    start: Any = None
    audio_frames: int = 0
    echoes: list[tuple[float, str]] = field(default_factory=list)
    stop_at: float | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    dtmf: list[str] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)


Scenario = Callable[["Link"], Awaitable[None]]


class Link:
    """The fake gateway's side of one call, protocol-neutral for the scenarios."""

    def __init__(self, ws: ServerConnection, gateway: FakeGateway, stream_sid: str) -> None:
        self.ws, self.gateway, self.seen, self.sid = ws, gateway, gateway.seen, stream_sid
        self.twilio = bool(stream_sid)

    async def audio(self, pcm16k: bytes) -> None:
        if self.twilio:
            # decimate by two: a 440 Hz tone survives it and the test needs no resampler
            pcm8k = b"".join(pcm16k[i : i + 2] for i in range(0, len(pcm16k), 4))
            await self.ws.send(tp.OutboundMedia(self.sid, ulaw_encode(pcm8k)).to_json())
        else:
            await self.ws.send(pcm16k)

    async def mark(self, name: str) -> None:
        self.seen.sent_at[name] = time.monotonic()
        if self.twilio:
            await self.ws.send(tp.OutboundMark(self.sid, name).to_json())
        else:
            await self.ws.send(bp.MarkMessage(name).to_json())

    async def clear(self) -> None:
        self.seen.sent_at["clear"] = time.monotonic()
        if self.twilio:
            await self.ws.send(tp.ClearMessage(self.sid).to_json())
        else:
            await self.ws.send(bp.ClearMessage().to_json())

    async def end(self) -> None:
        if not self.twilio:
            await self.ws.send(bp.EndMessage("agent hung up").to_json())
        await self.ws.close()


class FakeGateway:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.seen = Seen()
        self.state_clients: list[ServerConnection] = []
        self.port = 0
        self.seq = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def emit(self, session_id: str, type: str, **data: Any) -> None:
        self.seq += 1
        event = Event(self.seq, time.time(), session_id, type, data)
        for client in self.state_clients:
            await client.send(bp.EventMessage(event).to_json())

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path == "/ws/state":
            self.state_clients.append(ws)
            await ws.wait_closed()
            return
        twilio = path == "/ws/twilio"
        sid = ""
        if twilio:
            assert isinstance(tp.parse_inbound(await ws.recv()), tp.ConnectedMessage)
            start = tp.parse_inbound(await ws.recv())
            assert isinstance(start, tp.StartMessage)
            sid = start.stream_sid
            await self.emit("other", "session.started", call_sid="CAsomeoneelse")
            await self.emit("s-1", "session.started", call_sid=start.call_sid)
        else:
            start = bp.parse_client(await ws.recv())  # type: ignore[assignment]
            await ws.send(bp.SessionMessage("s-1").to_json())
        self.seen.start = start
        link = Link(ws, self, sid)
        reader = asyncio.create_task(self.read(ws, twilio))
        try:
            await self.scenario(link)
            await asyncio.wait_for(reader, 10)
        finally:
            reader.cancel()
            if twilio:
                await self.emit("s-1", "session.ended", reason="done")

    async def read(self, ws: ServerConnection, twilio: bool) -> None:
        async for raw in ws:
            now = time.monotonic()
            if twilio:
                msg = tp.parse_inbound(raw)
                if isinstance(msg, tp.MediaMessage):
                    self.seen.audio_frames += 1
                    assert len(msg.payload) == 160 and msg.chunk == self.seen.audio_frames
                elif isinstance(msg, tp.MarkMessage):
                    self.seen.echoes.append((now, msg.name))
                elif isinstance(msg, tp.DtmfMessage):
                    self.seen.dtmf.append(msg.digit)
                elif isinstance(msg, tp.StopMessage):
                    self.seen.stop_at = now
                    self.seen.stopped.set()
                    return
            elif isinstance(raw, bytes):
                assert len(raw) == 640
                self.seen.audio_frames += 1
            else:
                message = bp.parse_client(raw)
                if isinstance(message, bp.MarkMessage):
                    self.seen.echoes.append((now, message.name))
                elif isinstance(message, bp.DtmfMessage):
                    self.seen.dtmf.append(message.digit)
                elif isinstance(message, bp.StopMessage):
                    self.seen.stop_at = now
                    self.seen.stopped.set()
                    await ws.send(bp.EndMessage("caller hung up").to_json())
                    await ws.close()
                    return


@pytest.fixture
def fake() -> Callable[[Scenario], Any]:
    @contextlib.asynccontextmanager
    async def start(scenario: Scenario) -> AsyncIterator[FakeGateway]:
        gateway = FakeGateway(scenario)
        async with serve(gateway.handler, "127.0.0.1", 0) as server:
            gateway.port = next(iter(server.sockets)).getsockname()[1]
            yield gateway

    return start


SILENCE_100MS = bytes(3200)


# --- marks, clear, saved audio -------------------------------------------------------


async def play_three_chunks(link: Link) -> None:
    await asyncio.sleep(0.1)
    for i in range(3):
        await link.audio(tone(100))
        await link.mark(f"r1:{i}")
    for _ in range(100):  # wait for the echoes, then hang up
        if len(link.seen.echoes) == 3:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    await link.end()


@pytest.mark.parametrize("protocol", ["browser", "twilio"])
async def test_marks_echo_after_their_audio_played(
    protocol: str, fake: Callable[[Scenario], Any], tmp_path: Path
) -> None:
    async with fake(play_three_chunks) as gateway:
        out = tmp_path / "agent.wav"
        result = await run_call(
            None,
            protocol,  # type: ignore[arg-type]
            gateway.url,
            script=[Segment(SILENCE_100MS)],
            save_agent_audio=out,
        )
    seen = gateway.seen
    assert [name for _, name in seen.echoes] == ["r1:0", "r1:1", "r1:2"]
    first_sent = seen.sent_at["r1:0"]
    for i, (at, _) in enumerate(seen.echoes):
        played = (i + 1) * 0.1
        assert at - first_sent >= played - 0.03, f"mark {i} echoed before its audio played"
        assert at - first_sent <= played + 0.25
    assert result.ended_by == "agent" and result.close_code == 1000
    assert [e.detail["played"] for e in result.of_kind("mark.echoed")] == [True] * 3
    assert seen.audio_frames >= 5
    assert 0 <= len(result.frames) - seen.audio_frames <= 2  # some may be in flight at close

    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        samples = w.readframes(w.getnframes())
    assert abs(len(samples) / 32000 - result.duration_s) < 0.03
    assert 13 <= loud_frames(samples) <= 17  # 300 ms of tone, give or take the edges


async def play_then_clear(link: Link) -> None:
    await asyncio.sleep(0.1)
    for i in range(5):
        await link.audio(tone(200))
        await link.mark(f"r1:{i}")
    await asyncio.sleep(0.3)
    await link.clear()
    await asyncio.sleep(0.3)
    await link.end()


@pytest.mark.parametrize("protocol", ["browser", "twilio"])
async def test_clear_stops_playback_at_once(
    protocol: str, fake: Callable[[Scenario], Any], tmp_path: Path
) -> None:
    async with fake(play_then_clear) as gateway:
        result = await run_call(
            None,
            protocol,  # type: ignore[arg-type]
            gateway.url,
            script=[Segment(SILENCE_100MS)],
            save_agent_audio=tmp_path / "agent.wav",
        )
    seen = gateway.seen
    clear_at = seen.sent_at["clear"]
    played = [name for at, name in seen.echoes if at < clear_at]
    assert played == ["r1:0"]  # 200 ms played before the clear at 300 ms
    (clear,) = result.of_kind("clear.received")
    stopped = [e for e in result.of_kind("playback.stopped") if e.detail["reason"] == "clear"]
    assert len(stopped) == 1 and stopped[0].t == clear.t
    assert 650 <= clear.detail["dropped_ms"] <= 750
    after = [name for at, name in seen.echoes if at >= clear_at]
    if protocol == "twilio":  # Twilio returns the pending marks at once on clear
        assert after == ["r1:1", "r1:2", "r1:3", "r1:4"]
        assert all(at - clear_at < 0.1 for at, name in seen.echoes if name in after)
        echoed = result.of_kind("mark.echoed")
        assert [e.detail["played"] for e in echoed] == [True, False, False, False, False]
    else:  # the browser only ever echoes what it played
        assert after == []
    assert 13 <= loud_frames(result.agent_audio) <= 17  # 300 ms heard, the rest dropped


# --- caller audio, events and transcripts ---------------------------------------------


def test_voiced_frames_find_the_speech() -> None:
    speech = load_caller_audio(SPEECH)
    assert abs(len(speech) / 32000 - 3.285) < 0.01
    pad = bytes(640 * 25)  # 500 ms of digital silence either side
    voiced = voiced_frames(pad + speech + pad)
    assert len(voiced) == 50 + math.ceil(len(speech) / 640)
    hits = [i for i, v in enumerate(voiced) if v]
    # the prompt's words start ~60 ms in and end ~120 ms before its end
    assert 25 <= hits[0] <= 30
    assert len(voiced) - 25 - 12 <= hits[-1] < len(voiced) - 25
    assert len(hits) > 0.6 * (hits[-1] - hits[0])  # mostly speech in between
    assert not any(voiced_frames(bytes(640 * 50)))
    hiss = np.random.default_rng(7).normal(0, 60, 16000).astype("<i2").tobytes()
    assert not any(voiced_frames(hiss))  # line noise below the energy floor


def test_load_caller_audio_converts_any_wav(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(1)
        w.setframerate(44100)
        w.writeframes(bytes([128, 128]) * 44100)
    assert len(load_caller_audio(path)) == 32000  # 1 s of 16 kHz PCM16
    with pytest.raises(CallError, match="cannot read"):
        load_caller_audio(tmp_path / "missing.wav")
    with pytest.raises(CallError, match="odd"):
        load_caller_audio(b"\0" * 3)


async def converse(link: Link) -> None:
    """Wait for the caller's speech to end, say a reply, then hang up."""
    assert link.twilio
    start = link.seen.start
    assert isinstance(start, tp.StartMessage)
    for _ in range(400):
        if link.seen.audio_frames >= 170:  # the 3.3 s file, with its quiet tail, is sent
            break
        await asyncio.sleep(0.02)
    gateway = link.gateway
    await gateway.emit("s-1", "stt.final", text="agent pass")
    await gateway.emit("s-1", "agent.reply", text="Password accepted.")
    await link.audio(tone(300))
    await link.mark("r1:0")
    for _ in range(100):
        if link.seen.stop_at is not None:
            return
        await asyncio.sleep(0.05)


async def test_twilio_call_with_events_and_transcript(fake: Callable[[Scenario], Any]) -> None:
    async with fake(converse) as gateway:
        result = await run_call(
            None, "twilio", gateway.url, script=[Segment(SPEECH)], realtime=False, caller="+1555"
        )
    start = gateway.seen.start
    assert isinstance(start, tp.StartMessage)
    assert start.custom_parameters == {"caller": "+1555"}
    assert start.call_sid == result.call_sid and start.stream_sid == result.stream_sid
    assert result.session_id == "s-1"
    assert [e.event.type for e in result.events] == [
        "session.started",
        "stt.final",
        "agent.reply",
        "session.ended",
    ]
    assert [u.text for u in result.user_transcripts()] == ["agent pass"]
    assert [u.text for u in result.agent_replies()] == ["Password accepted."]
    voiced = sum(voiced_frames(load_caller_audio(SPEECH)))
    assert sum(f.voiced for f in result.frames) == voiced
    assert result.ended_by == "caller" and result.hangup_reason == "reply heard"
    (latency,) = result.response_latencies()
    assert latency.latency_s is not None and 0 < latency.latency_s < 3
    text = format_transcript(result)
    assert "] caller: agent pass" in text and "] agent: Password accepted." in text


# --- barge-in script, DTMF -----------------------------------------------------------


async def long_reply(link: Link) -> None:
    await asyncio.sleep(0.05)
    await link.audio(tone(1500))
    await link.mark("r1:0")
    for _ in range(200):  # the caller's voiced frames arrive while we play: barge-in
        if link.seen.audio_frames >= 40:
            break
        await asyncio.sleep(0.02)
    await link.clear()
    await asyncio.sleep(0.2)
    await link.end()


async def test_scripted_barge_in(fake: Callable[[Scenario], Any]) -> None:
    speech = load_caller_audio(SPEECH)
    script = [Segment(speech, after_agent_audio_ms=300, dtmf="1#")]
    async with fake(long_reply) as gateway:
        result = await run_call(None, "browser", gateway.url, script=script)
    assert gateway.seen.dtmf == ["1", "#"]
    (segment,) = result.of_kind("segment.started")
    (started,) = result.of_kind("playback.started")
    assert 0.28 <= segment.t - started.t <= 0.4
    (barge,) = result.barge_ins()
    assert barge.cleared and barge.voiced_at >= segment.t
    assert barge.clear_latency_s is not None and barge.clear_latency_s > 0
    assert barge.stop_latency_s == barge.clear_latency_s


# --- errors --------------------------------------------------------------------------


async def test_connection_refused_is_a_call_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CallError, match=f"cannot connect to ws://127.0.0.1:{port}/ws/browser"):
        await run_call(bytes(640), "browser", f"http://127.0.0.1:{port}")


async def bad_server(link: Link) -> None:
    await link.ws.send('{"type": "mystery"}')
    await asyncio.sleep(0.5)


async def test_bad_server_message_is_a_call_error(fake: Callable[[Scenario], Any]) -> None:
    async with fake(bad_server) as gateway:
        with pytest.raises(CallError) as info:
            await run_call(None, "browser", gateway.url, script=[Segment(SILENCE_100MS)])
    assert str(info.value) == 'server sent a bad message: unknown message type "mystery"'
    assert info.value.result is not None and info.value.result.session_id == "s-1"


async def test_caller_hangs_up_after_tail(fake: Callable[[Scenario], Any]) -> None:
    async def silent_agent(link: Link) -> None:
        await asyncio.wait_for(link.seen.stopped.wait(), 5)

    async with fake(silent_agent) as gateway:
        result = await run_call(
            None, "browser", gateway.url, script=[Segment(SILENCE_100MS)], tail_s=0.3
        )
    assert result.ended_by == "caller" and result.hangup_reason == "no agent audio for 0.3 s"
    assert gateway.seen.stop_at is not None
    assert result.end_reason == "caller hung up" and result.close_code == 1000
    assert 0.35 <= result.duration_s < 1.5


# --- the playback device on its own (no clock, no sleeping) --------------------------


def test_playback_device_positions_are_time() -> None:
    device = PlaybackDevice(8000)
    assert device.advance(0.5) == ([], None)
    device.write(bytes(1600))  # 100 ms
    assert device.mark("a") is False
    assert device.next_due() == 0.6
    assert device.advance(0.59) == ([], None)
    assert device.advance(0.61) == (["a"], 0.6)
    assert device.mark("b") is True  # nothing queued: due at once
    device.write(bytes(1600))
    device.mark("c")
    assert device.clear() == (800, ["c"])
    assert len(device.played) == int(0.61 * 8000) * 2


async def test_server_close_code_is_recorded(fake: Callable[[Scenario], Any]) -> None:
    async def refuse(link: Link) -> None:
        await link.ws.close(bp.CLOSE_POLICY_VIOLATION, "not today")

    async with fake(refuse) as gateway:
        result = await run_call(None, "twilio", gateway.url, script=[Segment(SILENCE_100MS)])
    assert (result.ended_by, result.close_code, result.close_reason) == (
        "server",
        1008,
        "not today",
    )
