"""Many Twilio media streams held open by one asyncio process (benchmarks/idle_streams.py).

Each stream speaks the protocol of gateway/evaluation/client.py as Twilio does
([WSM] "Media Streams - WebSocket Messages"): ``connected``, ``start``, then either a
20 ms mu-law ``media`` frame every 20 ms in real time (a silent caller: Twilio keeps
sending while the line is open), of digital silence (``silent``) or of a line's faint
noise (``hiss``, white noise at ``hiss_dbfs``), or nothing at all (``held``: a caller on
hold, a muted widget). Agent audio is "played" in real time: a ``mark`` goes back once
the audio queued before it has played, as Twilio echoes it.

One sender task paces every stream's frames (500 sleeping tasks would cost the client
more than the frames do); each stream has one reader task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.transports import twilio_protocol as tp
from voice.audio import ulaw_encode

Mode = Literal["silent", "hiss", "held"]
FRAME_S = 0.02
# mu-law of 0: what a silent line carries (G.711: 0xFF encodes linear 0)
SILENCE = base64.b64encode(b"\xff" * 160).decode()
HISS_DBFS = -70.0  # a quiet line's noise: under the gate's -56 dBFS in nearly every frame
STALL_S = 0.2  # a sender further behind than this skips frames instead of bursting
CONNECT_TIMEOUT_S = 30.0
_PENDING: set[asyncio.Future[bool]] = set()  # mark echoes in flight (kept from the GC)


@dataclass
class Stream:
    """One open stream and what happened to it, in monotonic seconds."""

    index: int
    ws: ClientConnection
    stream_sid: str = field(default_factory=lambda: "MZ" + uuid.uuid4().hex)
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    seq: int = 0
    chunk: int = 0
    agent_audio_s: float = 0.0  # greeting audio received (8 kHz mu-law seconds)
    first_audio_at: float | None = None
    play_until: float = 0.0  # the emulated loudspeaker has played up to here
    marks_echoed: int = 0
    closed_at: float | None = None
    close_code: int | None = None
    close_reason: str = ""
    payloads: tuple[str, ...] = (SILENCE,)  # cycled, one per media message

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def media(self) -> str:
        """A media message carrying 20 ms of the line (formatted, not built: at
        25,000 messages a second the client's CPU is part of the measurement)."""
        self.chunk += 1
        seq, chunk, ms = self.next_seq(), self.chunk, (self.chunk - 1) * 20
        payload = self.payloads[chunk % len(self.payloads)]
        return (f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound",'
                f'"chunk":"{chunk}","timestamp":"{ms}","payload":"{payload}"}},'
                f'"streamSid":"{self.stream_sid}"}}')


def hiss(dbfs: float, frames: int = 50) -> tuple[str, ...]:
    """One second of white noise at ``dbfs`` RMS on the 8 kHz line, as mu-law payloads:
    a real line is rarely digital silence."""
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(7).normal(0, rms, 160 * frames).clip(-32768, 32767)
    line = ulaw_encode(samples.astype("<i2").tobytes())
    return tuple(base64.b64encode(line[i : i + 160]).decode() for i in range(0, len(line), 160))


async def open_stream(url: str, index: int) -> Stream:
    """Connect to ``url`` (ws://host:port/ws/twilio) and send ``connected`` and ``start``."""
    ws = await connect(url, open_timeout=CONNECT_TIMEOUT_S, compression=None,
                       max_size=4 * 1024 * 1024)
    stream = Stream(index, ws)
    await ws.send(tp.ConnectedMessage().to_json())
    params = {"caller": f"+1555{index:07d}"}
    start = tp.StartMessage(stream.next_seq(), stream.stream_sid, "AC" + "0" * 32,
                            stream.call_sid, ("inbound",), params)
    await ws.send(start.to_json())
    return stream


async def read_stream(stream: Stream) -> None:
    """Play the agent's audio and echo its marks until the server closes the stream."""
    loop = asyncio.get_running_loop()
    try:
        async for raw in stream.ws:
            msg = json.loads(raw)
            event = msg.get("event")
            now = time.monotonic()
            if event == "media":
                seconds = len(msg["media"]["payload"]) * 3 / 4 / 8000
                stream.agent_audio_s += seconds
                stream.first_audio_at = stream.first_audio_at or now
                stream.play_until = max(stream.play_until, now) + seconds
            elif event == "mark":
                name = msg["mark"]["name"]
                loop.call_at(loop.time() + max(0.0, stream.play_until - now),
                             _echo_mark, stream, name)
            elif event == "clear":
                stream.play_until = now
    except ConnectionClosed:
        pass
    stream.closed_at = time.monotonic()
    stream.close_code = stream.ws.close_code
    stream.close_reason = stream.ws.close_reason or ""


def _echo_mark(stream: Stream, name: str) -> None:
    if stream.closed_at is not None:
        return
    mark = tp.MarkMessage(stream.next_seq(), stream.stream_sid, name)
    stream.marks_echoed += 1
    task = asyncio.ensure_future(_quiet_send(stream, mark.to_json()))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _quiet_send(stream: Stream, text: str) -> bool:
    try:
        await stream.ws.send(text)
        return True
    except ConnectionClosed:
        return False


@dataclass
class Sender:
    """Paces a silence frame to every open stream each 20 ms; ``late_frames`` counts the
    frames it skipped because it fell more than STALL_S behind (the client's own limit)."""

    streams: list[Stream]
    late_frames: int = 0
    sent: int = 0

    async def run(self) -> None:
        due = time.monotonic()
        while True:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -STALL_S:
                skipped = int(-delay / FRAME_S)
                self.late_frames += skipped * sum(s.closed_at is None for s in self.streams)
                due += skipped * FRAME_S
            for stream in self.streams:
                if stream.closed_at is None and await _quiet_send(stream, stream.media()):
                    self.sent += 1
            due += FRAME_S


@dataclass
class Crowd:
    """N streams opened ``concurrency`` at a time; their readers, and a sender if silent."""

    url: str
    mode: Mode
    hiss_dbfs: float = HISS_DBFS
    streams: list[Stream] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    sender: Sender | None = None
    _sending: asyncio.Task[None] | None = None

    async def open(self, n: int, concurrency: int = 32) -> None:
        gate = asyncio.Semaphore(concurrency)
        payloads = hiss(self.hiss_dbfs) if self.mode == "hiss" else (SILENCE,)
        if self.mode != "held":
            self.sender = Sender(self.streams)
            self._sending = asyncio.create_task(self.sender.run())

        async def one(i: int) -> None:
            async with gate:
                try:
                    stream = await open_stream(self.url, i)
                except (OSError, TimeoutError, ConnectionClosed, Exception) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
                stream.payloads = payloads
                self.streams.append(stream)
                self.readers.append(asyncio.create_task(read_stream(stream)))

        await asyncio.gather(*(one(i) for i in range(n)))

    def open_count(self) -> int:
        return sum(s.closed_at is None for s in self.streams)

    async def close(self) -> None:
        """Hang up every stream as Twilio does (``stop``, then close the socket)."""
        async def hang_up(stream: Stream) -> None:
            if stream.closed_at is None:
                stop = tp.StopMessage(stream.next_seq(), stream.stream_sid,
                                      "AC" + "0" * 32, stream.call_sid)
                await _quiet_send(stream, stop.to_json())
            with contextlib.suppress(Exception):
                await stream.ws.close()

        if self._sending is not None:
            self._sending.cancel()
        await asyncio.gather(*(hang_up(s) for s in self.streams))
        tasks = [*self.readers, *([self._sending] if self._sending else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
