"""What a LiveKit call's caller app sees besides audio: every event of the session as JSON
on the data topic ``voxgate.events``, and the caller's words and the agent's sentences as
LiveKit transcriptions (text streams on ``lk.transcription``, the topic LiveKit's client
components read)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from livekit import rtc

from orchestration.log.events import Event

log = logging.getLogger(__name__)

EVENTS_TOPIC = "voxgate.events"
TRANSCRIPTION_TOPIC = "lk.transcription"
QUIET_EVENTS = frozenset({"audio.levels"})  # the dashboard's meters stay on the node


async def publish_event(room: rtc.Room, event: dict[str, Any]) -> None:
    await room.local_participant.publish_data(json.dumps(event, default=str),
                                              reliable=True, topic=EVENTS_TOPIC)


class Forwarder:
    """A session's events, from the bus (any thread) to the room (this call's loop)."""

    def __init__(self, room: rtc.Room, session_id: str, caller_track: str,
                 agent_track: str) -> None:
        self.room = room
        self.session_id = session_id
        self.tracks = {"caller": caller_track, "agent": agent_track}
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.task = self.loop.create_task(self._send(), name="lk-events")

    def on_event(self, event: Event) -> None:
        if event.session_id == self.session_id and event.type not in QUIET_EVENTS:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def flush(self) -> None:
        """Send what is queued (the session's last events), then stop."""
        self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5.0)

    async def _send(self) -> None:
        while (event := await self.queue.get()) is not None:
            try:
                await self._send_one(event)
            except Exception as exc:  # the room went away: the call is over anyway
                log.debug("session %s: event %s not sent: %r", self.session_id,
                          event.type, exc)

    async def _send_one(self, event: Event) -> None:
        await publish_event(self.room, {"seq": event.seq, "ts": event.ts,
                                         "type": event.type, **dict(event.data)})
        said = {"stt.final": "caller", "tts.started": "agent"}.get(event.type)
        text = event.data.get("text")
        if said is None or not isinstance(text, str) or not text:
            return
        await self.room.local_participant.send_text(text, topic=TRANSCRIPTION_TOPIC, attributes={
            "lk.transcribed_track_id": self.tracks[said],
            "lk.segment_id": f"{self.session_id}-{event.seq}",
            "lk.transcription_final": "true",
            "voxgate.speaker": said,
        })
