"""A LiveKit room as a call's transport: the caller's audio track in, an audio track out.

A room carries Opus at 48 kHz. The caller's track is read as 48 kHz mono PCM16
(``rtc.AudioStream``), resampled to voxgate's 16 kHz with voice/'s soxr resampler and cut
into 20 ms frames for the ``CallSession``. The session's reply (resampled by its speaker to
``out_rate``) goes into an ``rtc.AudioSource`` published as the agent's microphone track.

Marks: a mark is reported once every frame queued before it has left the source
(``AudioSource.wait_for_playout``), i.e. has been handed to WebRTC; that is as close to
"heard" as a room lets a publisher know. A barge-in clears the queue and the source's
buffer at once, and drops the marks of the cleared audio (the session stops waiting for
them when it stops the reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from livekit import rtc

from voice.audio import FrameAssembler, StreamResampler, frame_bytes

log = logging.getLogger(__name__)

ROOM_RATE = 48_000
OUT_FRAME_MS = 20
# how much agent audio the source buffers ahead of WebRTC: small, so a barge-in's clear
# silences the agent quickly, large enough to ride over an event-loop hiccup
SOURCE_QUEUE_MS = 200


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


class LiveKitTransport:
    protocol = "livekit"
    out_rate = ROOM_RATE

    def __init__(self, source: rtc.AudioSource) -> None:
        self.source = source
        self.on_mark: Callable[[str], None] = lambda name: None
        self.closed = asyncio.Event()
        self.end_reason = ""
        self.transfer_target: str | None = None
        self._queue: deque[bytes | _Mark] = deque()
        self._wake = asyncio.Event()
        self._player: asyncio.Task[None] | None = None

    @classmethod
    def create(cls) -> LiveKitTransport:
        return cls(rtc.AudioSource(ROOM_RATE, 1, queue_size_ms=SOURCE_QUEUE_MS))

    def start(self) -> None:
        self._player = asyncio.get_running_loop().create_task(self._play(), name="lk-player")

    async def aclose(self) -> None:
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
        await self.source.aclose()

    # --- the Transport protocol ----------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        self._queue.append(pcm)
        self._wake.set()

    async def send_mark(self, name: str) -> None:
        self._queue.append(_Mark(name))
        self._wake.set()

    async def clear(self) -> None:
        self._queue.clear()
        self.source.clear_queue()
        # what the player is pushing or waiting on now belongs to the cleared audio
        if self._player is not None and not self._player.done():
            self._player.cancel()
            self.start()

    async def transfer(self, target: str) -> None:
        # a room has nowhere to transfer to by itself (a SIP trunk would); the worker
        # ends the call and the event tells the caller's app where it was sent
        self.transfer_target = target
        await self.end(f"transfer to {target}")

    async def end(self, reason: str) -> None:
        self.end_reason = reason
        self.closed.set()

    # --- playout ------------------------------------------------------------------------

    async def _play(self) -> None:
        step = frame_bytes(ROOM_RATE, OUT_FRAME_MS)
        samples = step // 2
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, _Mark):
                await self.source.wait_for_playout()
                self.on_mark(item.name)
                continue
            for start in range(0, len(item), step):
                piece = item[start:start + step]
                if len(piece) < step:  # the sentence's tail: pad the last frame with silence
                    piece += bytes(step - len(piece))
                await self.source.capture_frame(rtc.AudioFrame(
                    data=piece, sample_rate=ROOM_RATE, num_channels=1,
                    samples_per_channel=samples))


class CallerAudio:
    """The caller's track as voxgate's 20 ms frames of 16 kHz PCM16."""

    def __init__(self, track: rtc.Track) -> None:
        self._stream = rtc.AudioStream(track, sample_rate=ROOM_RATE, num_channels=1)
        self._resampler = StreamResampler(ROOM_RATE, 16_000)
        self._frames = FrameAssembler()

    async def frames(self, feed: Callable[[bytes], None]) -> None:
        """Feed every frame to ``feed`` until the track ends."""
        async for event in self._stream:
            pcm = self._resampler.process(bytes(event.frame.data))
            for frame in self._frames.push(pcm):
                feed(frame)

    async def aclose(self) -> None:
        await self._stream.aclose()
