"""A caller in a LiveKit room, built on the ``livekit`` Python SDK as an app would be: it
joins with a token, publishes a microphone track (silence, and real speech when told),
and records what the agent sends back: its audio, its transcriptions (``lk.transcription``)
and voxgate's events (data topic ``voxgate.events``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc

from gateway.livekit.events import EVENTS_TOPIC, TRANSCRIPTION_TOPIC
from gateway.livekit.transport import ROOM_RATE
from gateway.livekit.worker import WORKER_ATTRIBUTE
from voice.audio import SAMPLE_RATE, frame_bytes, resample

FRAME_MS = 20
AUDIBLE = 500  # RMS of a frame (PCM16) above which agent audio counts as speech


@dataclass
class Heard:
    """What the caller got from the room, stamped with the caller's monotonic clock."""

    events: list[dict[str, Any]] = field(default_factory=list)
    transcriptions: list[tuple[str, str]] = field(default_factory=list)  # (speaker, text)
    audible_at: list[float] = field(default_factory=list)  # agent frames with speech

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def finals(self, since: int = 0) -> str:
        """The caller's words as the agent heard them (``stt.final``), from the ``since``-th
        turn on: one utterance may come as two turns when the caller pauses in it."""
        return " ".join(str(e.get("text", "")) for e in self.of_type("stt.final")[since:])

    def spoken(self, speaker: str) -> str:
        """Everything ``speaker`` ("caller" or "agent") said, from the transcriptions."""
        return " ".join(t for s, t in self.transcriptions if s == speaker)


class Caller:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.room = rtc.Room()
        self.heard = Heard()
        self.agent: rtc.RemoteParticipant | None = None
        self._speech: list[bytes] = []  # 48 kHz frames still to send
        self.spoke_until = 0.0  # when the last frame of speech audio went out
        self.voiced_until = 0.0  # when the last voiced one did (RMS above AUDIBLE)
        self._source = rtc.AudioSource(ROOM_RATE, 1, queue_size_ms=100)
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self) -> None:
        self.room.on("data_received", self._data)
        self.room.on("track_subscribed", self._track)
        self.room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._text)
        await self.room.connect(self.url, self.token)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
        await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self._tasks.append(asyncio.create_task(self._microphone(), name="mic"))

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.room.disconnect()
        await self._source.aclose()

    def say(self, pcm16k: bytes) -> None:
        """Speak ``pcm16k`` (16 kHz PCM16) into the microphone, in real time."""
        pcm = resample(pcm16k, SAMPLE_RATE, ROOM_RATE)
        step = frame_bytes(ROOM_RATE, FRAME_MS)
        self._speech += [pcm[i:i + step] for i in range(0, len(pcm) - step + 1, step)]

    async def wait_for(self, what: str, check: Any, limit_s: float) -> Any:
        """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
        try:
            async with asyncio.timeout(limit_s):
                while not (found := check()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"no {what} within {limit_s:.0f} s; heard: "
                                 f"{self.heard.transcriptions}, events: "
                                 f"{[e.get('type') for e in self.heard.events][-30:]}") from None
        return found

    async def wait_for_agent(self, limit_s: float = 60) -> str:
        """The name of the worker whose agent joined (its voxgate.worker attribute)."""
        def agent() -> rtc.RemoteParticipant | None:
            return next((p for p in self.room.remote_participants.values()
                         if WORKER_ATTRIBUTE in p.attributes), None)

        self.agent = await self.wait_for("agent in the room", agent, limit_s)
        return str(self.agent.attributes[WORKER_ATTRIBUTE])

    async def routes(self) -> list[str]:
        """The ICE candidate pair each of the caller's peer connections is using, as
        "udp 127.0.0.1:50123 -> 127.0.0.1:40001 (host)"."""
        stats = await self.room.get_rtc_stats()
        found = []
        for report in (stats.publisher_stats, stats.subscriber_stats):
            pairs = {s.candidate_pair.rtc.id: s.candidate_pair.candidate_pair
                     for s in report if s.HasField("candidate_pair")}
            ends = {s.local_candidate.rtc.id: s.local_candidate.candidate
                    for s in report if s.HasField("local_candidate")}
            ends |= {s.remote_candidate.rtc.id: s.remote_candidate.candidate
                     for s in report if s.HasField("remote_candidate")}
            for item in report:
                pair = pairs.get(item.transport.transport.selected_candidate_pair_id) if (
                    item.HasField("transport")) else None
                if pair is None:
                    continue
                local, remote = ends[pair.local_candidate_id], ends[pair.remote_candidate_id]
                found.append(f"{local.protocol} {local.address}:{local.port} -> "
                             f"{remote.address}:{remote.port} ({remote.candidate_type})")
        return found

    # --- the room's callbacks -----------------------------------------------------------

    async def _microphone(self) -> None:
        step = frame_bytes(ROOM_RATE, FRAME_MS)
        quiet = bytes(step)
        next_at = time.monotonic()
        while True:
            data = self._speech.pop(0) if self._speech else quiet
            await self._source.capture_frame(rtc.AudioFrame(
                data=data, sample_rate=ROOM_RATE, num_channels=1,
                samples_per_channel=step // 2))
            if data is not quiet:
                self.spoke_until = time.monotonic()
                if _rms(data) > AUDIBLE:
                    self.voiced_until = self.spoke_until
            next_at += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _data(self, packet: rtc.DataPacket) -> None:
        if packet.topic == EVENTS_TOPIC:
            self.heard.events.append(json.loads(packet.data))

    def _text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            speaker = (reader.info.attributes or {}).get("voxgate.speaker", identity)
            self.heard.transcriptions.append((speaker, text))

        self._tasks.append(asyncio.create_task(read(), name="transcription"))

    def _track(self, track: rtc.Track, _: rtc.RemoteTrackPublication,
               who: rtc.RemoteParticipant) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and WORKER_ATTRIBUTE in who.attributes:
            self._tasks.append(asyncio.create_task(self._listen(track), name="speaker"))

    async def _listen(self, track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=ROOM_RATE, num_channels=1):
            if _rms(bytes(event.frame.data)) > AUDIBLE:
                self.heard.audible_at.append(time.monotonic())


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0
