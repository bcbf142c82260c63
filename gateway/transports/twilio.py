"""Twilio Media Streams: the ``/ws/twilio`` endpoint and the transport it gives a session.

Twilio sends mu-law at 8 kHz in 20 ms chunks; we decode, resample to 16 kHz and feed the
session. Agent audio goes back as mu-law 8 kHz media messages followed by a mark; on a
barge-in we send ``clear``, which makes Twilio drop its buffer and return pending marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.observability.logs import bind_session
from gateway.runtime import CallRefused, CapacityError, Draining, Runtime
from gateway.transports.inbox import Inbox, disconnect_reason
from gateway.transports.outbox import Outbox
from gateway.transports.twilio_protocol import (
    ClearMessage,
    ConnectedMessage,
    DtmfMessage,
    MarkMessage,
    MediaMessage,
    OutboundMark,
    OutboundMedia,
    StartMessage,
    StopMessage,
    TwilioProtocolError,
    parse_inbound,
)
from orchestration.agents.system import ResumeError
from voice.audio import chunks, ulaw_encode
from voice.line_in import LineIn
from voice.session import CallSession

log = logging.getLogger(__name__)

# Twilio does not read close codes, but our own client and logs do.
CLOSE_PROTOCOL_ERROR = 1008
OUT_CHUNK_BYTES = 160 * 5  # 100 ms of mu-law per media message
# a stream that keeps sending garbage is not a phone call: past this many bad messages
# it is closed
MAX_BAD_MESSAGES = 20
# what Runtime.new_session_id makes (the TwiML's <Parameter name="session">)
SESSION_ID = re.compile(r"[0-9a-f]{16}")


class TwilioTransport:
    protocol = "twilio"
    out_rate = 8000

    def __init__(self, outbox: Outbox, stream_sid: str, runtime: Runtime, call_sid: str) -> None:
        self._outbox = outbox
        self._stream_sid = stream_sid
        self._runtime = runtime
        self._call_sid = call_sid
        self.closed = asyncio.Event()

    async def send_audio(self, pcm: bytes) -> None:
        for piece in chunks(ulaw_encode(pcm), OUT_CHUNK_BYTES):
            self._outbox.put(OutboundMedia(self._stream_sid, piece).to_json(), droppable=True)

    async def send_mark(self, name: str) -> None:
        self._outbox.put(OutboundMark(self._stream_sid, name).to_json(), droppable=True)

    async def clear(self) -> None:
        self._outbox.clear(ClearMessage(self._stream_sid).to_json())

    async def transfer(self, target: str) -> None:
        # Closing the stream hands the call back to Twilio, which asks the <Connect action>
        # webhook what to do next: that webhook dials the target recorded here.
        self._runtime.transfers[self._call_sid] = target
        self.closed.set()

    async def end(self, reason: str) -> None:
        self.closed.set()


async def handle_twilio(ws: WebSocket, runtime: Runtime) -> None:
    await ws.accept()
    if runtime.draining:  # refused before Twilio sends a byte; see Runtime.drain
        refusal = Draining()
        await ws.close(refusal.close_code, str(refusal))
        return
    settings = runtime.settings
    outbox = Outbox(ws.send_text, ws.send_bytes)
    writer = asyncio.create_task(outbox.run(), name="twilio-writer")
    session: CallSession | None = None
    transport: TwilioTransport | None = None
    reason = "stream closed"
    try:
        try:
            start = await asyncio.wait_for(_await_start(ws), settings.start_timeout_s)
        except TimeoutError:
            log.warning("twilio stream sent no start within %.0f s", settings.start_timeout_s)
            await ws.close(CLOSE_PROTOCOL_ERROR, "no start message")
            return
        if start is None:
            return
        transport = TwilioTransport(outbox, start.stream_sid, runtime, start.call_sid)
        try:
            session = await _open_session(runtime, transport, start)
        except CallRefused as exc:
            log.warning("refusing twilio call %s: %s", start.call_sid, exc)
            if isinstance(exc, CapacityError) and len(runtime.refused_streams) < 10_000:
                runtime.refused_streams[start.call_sid] = exc.code
            await ws.close(exc.close_code, str(exc)[:120])
            return
        log.info("twilio call %s started session %s", start.call_sid, session.id)
        bind_session(session.id)
        await session.start()
        reason = await _pump(ws, session, transport, settings.idle_timeout_s)
    except WebSocketDisconnect as exc:
        reason = disconnect_reason(exc.code)
    finally:
        if session is not None:
            await runtime.end_session(session, reason)
            # how the call ended is in the shared log before Twilio, seeing the stream
            # close, asks any node's <Connect action> what to do next
            await runtime.call_log.durable()
        outbox.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer, 2.0)
        writer.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _open_session(runtime: Runtime, transport: TwilioTransport,
                        start: StartMessage) -> CallSession:
    """The session for a new stream: the one its TwiML named (``session``), carrying on
    the dropped stream of the same phone call (``resume_from``) when the log holds it."""
    params = start.custom_parameters
    caller, chosen = params.get("caller"), _session_id(params.get("session"))
    if chosen is not None and chosen not in runtime.reserved and await asyncio.to_thread(
            runtime.call_log.started, chosen) is not None:
        # promised by another node is fine; a session the log already has is not reused
        log.warning("twilio call %s: session %s is taken; a new one", start.call_sid, chosen)
        chosen = None
    resume = _session_id(params.get("resume_from"))
    if resume is not None:
        started = await asyncio.to_thread(runtime.call_log.started, resume)
        if started is None or started.get("call_sid") != start.call_sid:
            log.warning("twilio call %s: not resuming %s (not this call's session)",
                        start.call_sid, resume)
            resume = None
    try:
        return runtime.new_session(transport, "twilio", caller, start.call_sid,
                                   resume_from=resume, session_id=chosen)
    except ResumeError as exc:
        log.warning("twilio call %s starts afresh: %s", start.call_sid, exc)
        return runtime.new_session(transport, "twilio", caller, start.call_sid,
                                   session_id=chosen)


def _session_id(value: str | None) -> str | None:
    """A session id from the stream's parameters, if it looks like one of ours."""
    return value if value is not None and SESSION_ID.fullmatch(value) else None


async def _await_start(ws: WebSocket) -> StartMessage | None:
    """Read until ``start``; ``connected`` may precede it."""
    while True:
        text = await ws.receive_text()
        try:
            msg = parse_inbound(text)
        except TwilioProtocolError as exc:
            log.warning("twilio: bad message before start: %s", exc)
            await ws.close(CLOSE_PROTOCOL_ERROR, str(exc)[:120])
            return None
        if isinstance(msg, StartMessage):
            return msg
        if not isinstance(msg, ConnectedMessage):
            log.warning("twilio: %s before start", msg.event)
            await ws.close(CLOSE_PROTOCOL_ERROR, f"{msg.event} before start")
            return None


async def _pump(
    ws: WebSocket, session: CallSession, transport: TwilioTransport, idle_timeout_s: float
) -> str:
    line = LineIn(session, session.config.vad.energy_floor_db, lambda: session.listener.silent)
    bad = 0
    async with Inbox(ws, idle_timeout_s, transport.closed, session.ended) as inbox:
        async for message in inbox:
            text = message.get("text")
            if text is None:
                log.warning("session %s: binary frame on a Twilio stream", session.id)
                await ws.close(CLOSE_PROTOCOL_ERROR, "binary frames are not part of the protocol")
                return "protocol error"
            try:
                msg = parse_inbound(text)
            except TwilioProtocolError as exc:
                # one bad message is logged and skipped: a live phone call is worth more
                # than strictness, and Twilio never resends
                log.warning("session %s: bad twilio message: %s", session.id, exc)
                session.emit("gateway.bad_message", protocol="twilio", error=str(exc)[:200])
                bad += 1
                if bad > MAX_BAD_MESSAGES:
                    await ws.close(CLOSE_PROTOCOL_ERROR, "too many bad messages")
                    return "protocol error: too many bad messages"
                continue
            if isinstance(msg, MediaMessage):
                if msg.track != "inbound":
                    continue
                line.push(msg.payload)
            elif isinstance(msg, MarkMessage):
                session.on_mark(msg.name)
            elif isinstance(msg, DtmfMessage):
                session.on_dtmf(msg.digit)
            elif isinstance(msg, StopMessage):
                return "caller hung up"
        if inbox.why == "idle":
            return "idle timeout"
        if inbox.why == "stopped":
            return session.end_reason or "agent ended the call"
        return disconnect_reason(inbox.close_code)
