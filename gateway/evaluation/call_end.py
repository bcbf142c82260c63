"""The far end of a call in the call client: the call's state, the loudspeaker agent
audio plays on (marks echoed once played, ``clear`` honoured as Twilio does) and what
each server message does (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.evaluation.call_result import CallResult
from gateway.evaluation.caller_audio import (
    FRAME_BYTES_16K,
    Protocol,
    Segment,
    load_caller_audio,
    voiced_frames,
    wire_frames,
)
from gateway.evaluation.connect import endpoint, twilio_signature, with_token
from gateway.evaluation.playback import PlaybackDevice
from gateway.transports import browser_protocol as bp
from gateway.transports import twilio_protocol as tp
from orchestration.log.events import Event
from voice.audio import SAMPLE_RATE, ulaw_decode, ulaw_encode

FRAME_S = 0.02
MAX_EVENTS = 100_000


class CallEnd:
    """The far end of one call, as the server sees it: the state of the call, the
    emulated loudspeaker agent audio plays on, and what the server's messages do to it.
    ``client._Call`` adds the caller's side: pacing the script and speaking."""
    def __init__(
        self,
        protocol: Protocol,
        url: str,
        segments: Sequence[Segment],
        *,
        realtime: bool,
        tail_s: float,
        hangup_after_reply: bool,
        caller: str | None,
        max_call_s: float,
        clock: Callable[[], float],
        token: str | None = None,
        admin_token: str | None = None,
        twilio_auth_token: str | None = None,
        call_sid: str | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.protocol = protocol
        self.twilio = protocol == "twilio"
        # the widget token opens a browser call; the admin token the event stream, in a
        # header: never in a URL, where logs keep it
        self.url = with_token(endpoint(url, f"/ws/{protocol}"), token)
        self.state_url = endpoint(url, "/ws/state")
        self.state_headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
        # a production gateway checks Twilio's signature on the stream upgrade
        self.headers = ({"X-Twilio-Signature": twilio_signature(self.url, twilio_auth_token)}
                        if self.twilio and twilio_auth_token else None)
        self.realtime = realtime
        self.tail_s = tail_s
        self.hangup_after_reply = hangup_after_reply
        self.caller = caller
        self.parameters = dict(parameters or {})  # the stream's custom parameters
        self.max_call_s = max_call_s
        self.clock = clock
        self.prepared: list[tuple[Segment, list[bytes], list[bool]]] = []
        for seg in segments:
            pcm = load_caller_audio(seg.audio) if seg.audio is not None else b""
            self.prepared.append((seg, wire_frames(pcm, protocol), voiced_frames(pcm)))
        self.silence = ulaw_encode(bytes(320)) if self.twilio else bytes(FRAME_BYTES_16K)
        self.playback = PlaybackDevice(8000 if self.twilio else SAMPLE_RATE)
        self.result = CallResult(protocol=protocol, url=self.url)
        if self.twilio:
            self.result.stream_sid = "MZ" + uuid.uuid4().hex
            self.result.call_sid = call_sid or "CA" + uuid.uuid4().hex
            self.account_sid = "AC" + uuid.uuid4().hex
        self.done = asyncio.Event()
        self.session_ended = asyncio.Event()
        self.bad: str | None = None
        self.t0 = clock()
        self._lock = asyncio.Lock()
        self._ws: ClientConnection | None = None
        self._seq = 0
        self._next = 0.0
        self._last_voiced: float | None = None
        self._last_agent_audio: float | None = None
        self._play_started: float | None = None
        self._idle_since = 0.0
        self._script_end = 0.0
        self._state_events: list[tuple[float, Event]] = []

    def now(self) -> float:
        return self.clock() - self.t0

    def _seq_next(self) -> int:
        self._seq += 1
        return self._seq

    async def _send(self, data: str | bytes) -> bool:
        assert self._ws is not None
        try:
            async with self._lock:
                await self._ws.send(data)
        except ConnectionClosed:
            self.done.set()
            return False
        return True

    # --- playback ---------------------------------------------------------------------

    async def _sync_playback(self) -> None:
        marks, drained_at = self.playback.advance(self.now())
        if drained_at is not None:
            self._stopped_playing(drained_at, "drained")
        for name in marks:
            await self._echo_mark(name, played=True)

    def _stopped_playing(self, t: float, reason: str) -> None:
        self._idle_since = t
        self.result.add(t, "playback.stopped", reason=reason)

    async def _echo_mark(self, name: str, *, played: bool) -> None:
        self.result.add(self.now(), "mark.echoed", name=name, played=played)
        if self.twilio:
            sid = self.result.stream_sid or ""
            await self._send(tp.MarkMessage(self._seq_next(), sid, name).to_json())
        else:
            await self._send(bp.MarkMessage(name).to_json())

    async def _agent_audio(self, pcm: bytes) -> None:
        await self._sync_playback()
        t = self.now()
        first = not self.playback.busy
        self.playback.write(pcm)
        self._last_agent_audio = t
        self.result.add(t, "agent.audio", bytes=len(pcm), first=first)
        if first:
            self._play_started = t
            self.result.add(t, "playback.started")

    async def _mark(self, name: str) -> None:
        await self._sync_playback()
        self.result.add(self.now(), "mark.received", name=name)
        if self.playback.mark(name):  # nothing queued before it: it has "played" already
            await self._echo_mark(name, played=True)

    async def _clear(self) -> None:
        await self._sync_playback()
        t = self.now()
        was_busy = self.playback.busy
        dropped, pending = self.playback.clear()
        self.result.add(t, "clear.received", dropped_ms=dropped * 1000 // self.playback.rate)
        if was_busy:
            self._stopped_playing(t, "clear")
        if self.twilio:
            for name in pending:
                await self._echo_mark(name, played=False)

    async def _tick(self) -> None:
        while True:
            await self._sync_playback()
            due = self.playback.next_due()
            wait = FRAME_S if due is None else min(FRAME_S, max(0.0, due - self.now()))
            await asyncio.sleep(wait)

    # --- receiving --------------------------------------------------------------------

    async def _listen(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    await self._on_message(raw)
                except (tp.TwilioProtocolError, bp.BrowserProtocolError) as exc:
                    self.bad = f"server sent a bad message: {exc}"
                    self.result.add(self.now(), "error", message=self.bad)
                    break
        except ConnectionClosed:
            pass
        finally:
            self.done.set()

    async def _on_message(self, raw: str | bytes) -> None:
        if self.twilio:
            if isinstance(raw, bytes):
                raise tp.TwilioProtocolError("binary frame on a Twilio stream")
            out = tp.parse_outbound(raw)
            if out.stream_sid != self.result.stream_sid:
                raise tp.TwilioProtocolError(f"{out.event} for unknown streamSid {out.stream_sid}")
            if isinstance(out, tp.OutboundMedia):
                await self._agent_audio(ulaw_decode(out.payload))
            elif isinstance(out, tp.OutboundMark):
                await self._mark(out.name)
            else:
                await self._clear()
            return
        if isinstance(raw, bytes):
            if len(raw) % 2:
                raise bp.BrowserProtocolError(
                    bp.ERR_BAD_AUDIO, f"audio frame of {len(raw)} bytes is not whole PCM16 samples"
                )
            await self._agent_audio(raw)
            return
        msg = bp.parse_server(raw)
        t = self.now()
        if isinstance(msg, bp.SessionMessage):
            if msg.sample_rate != bp.SERVER_SAMPLE_RATE:
                raise bp.BrowserProtocolError(
                    bp.ERR_INVALID_MESSAGE,
                    f"session.sample_rate {msg.sample_rate} (expected {bp.SERVER_SAMPLE_RATE})",
                )
            self.result.session_id = msg.session_id
            self.result.add(t, "session", session_id=msg.session_id)
        elif isinstance(msg, bp.MarkMessage):
            await self._mark(msg.name)
        elif isinstance(msg, bp.ClearMessage):
            await self._clear()
        elif isinstance(msg, bp.EventMessage):
            self.result.add_event(t, msg.event)
        elif isinstance(msg, bp.ErrorMessage):
            self.result.add(t, "server.error", code=msg.code, message=msg.message)
            self.result.errors.append(f"server error {msg.code}: {msg.message}")
        elif isinstance(msg, bp.EndMessage):
            self.result.end_reason = msg.reason
            self.result.add(t, "end", reason=msg.reason)
            if self.result.ended_by is None:
                self.result.ended_by = "agent"

    async def _read_state(self, ws: ClientConnection) -> None:
        """Twilio carries no events: read them from ``/ws/state``, keep our session's."""
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                try:
                    msg = bp.parse_server(raw)
                except bp.BrowserProtocolError:
                    continue  # the dashboard feed may carry more than events
                if not isinstance(msg, bp.EventMessage):
                    continue
                event, t = msg.event, self.now()
                sid = self.result.session_id
                if (
                    sid is None
                    and event.type == "session.started"
                    and event.data.get("call_sid") == self.result.call_sid
                ):
                    sid = self.result.session_id = event.session_id
                    self.result.add(t, "session", session_id=sid)
                    for early_t, early in self._state_events:
                        if early.session_id == sid:
                            self.result.add_event(early_t, early)
                    self._state_events.clear()
                if sid is None:
                    if len(self._state_events) < MAX_EVENTS:
                        self._state_events.append((t, event))
                elif event.session_id == sid:
                    self.result.add_event(t, event)
                    if event.type == "session.ended":
                        self.session_ended.set()
