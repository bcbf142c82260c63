"""What a call's session needs from the network edge that carries it.

The session never knows whether it is on a Twilio media stream, a browser WebSocket or a
LiveKit room: a transport converts audio to and from the internal format and reports
which marks the far end has played.
"""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    protocol: str
    out_rate: int  # sample rate of the PCM16 passed to send_audio

    async def send_audio(self, pcm: bytes) -> None:
        """Queue agent audio (PCM16 mono at ``out_rate``) for playback."""

    async def send_mark(self, name: str) -> None:
        """Ask the far end to report ``name`` back once the audio before it has played."""

    async def clear(self) -> None:
        """Drop every bit of queued agent audio at once (barge-in)."""

    async def transfer(self, target: str) -> None:
        """Hand the caller over to ``target`` (a number, queue or URI)."""

    async def end(self, reason: str) -> None:
        """Hang up."""
