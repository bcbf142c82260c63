"""The browser call endpoint ``/ws/browser`` (protocol: docs/protocol.md).

Binary frames carry PCM16 audio both ways; JSON text frames carry control messages and
the session's events. Any protocol error is reported with an ``error`` message and, when
fatal, a close code; it ends this connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.observability.logs import bind_session
from gateway.runtime import CallRefused, Draining, Runtime
from gateway.transports.browser_protocol import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    BrowserProtocolError,
    ClearMessage,
    DtmfMessage,
    EndMessage,
    ErrorMessage,
    EventMessage,
    MarkMessage,
    PingMessage,
    PongMessage,
    SessionMessage,
    StartMessage,
    StopMessage,
    TextMessage,
)
from gateway.transports.browser_validator import ClientValidator
from gateway.transports.inbox import Inbox, disconnect_reason
from gateway.transports.outbox import Outbox
from orchestration.log.events import Event
from voice.audio import FrameAssembler, StreamResampler, chunks
from voice.session import CallSession

log = logging.getLogger(__name__)

OUT_CHUNK_BYTES = 3200  # 100 ms of 16 kHz PCM16 per binary message


class BrowserTransport:
    protocol = "browser"
    out_rate = 16000

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.closed = asyncio.Event()
        self.end_reason = ""

    async def send_audio(self, pcm: bytes) -> None:
        for piece in chunks(pcm, OUT_CHUNK_BYTES):
            self._outbox.put(piece, droppable=True)

    async def send_mark(self, name: str) -> None:
        self._outbox.put(MarkMessage(name).to_json(), droppable=True)

    async def clear(self) -> None:
        self._outbox.clear(ClearMessage().to_json())

    async def transfer(self, target: str) -> None:
        # a browser has nowhere to be transferred to; the event tells the page
        await self.end(f"transfer to {target}")

    async def end(self, reason: str) -> None:
        self.end_reason = reason
        self._outbox.put(EndMessage(reason).to_json())
        self.closed.set()


async def handle_browser(ws: WebSocket, runtime: Runtime) -> None:
    await ws.accept()
    if runtime.draining:
        refusal = Draining()
        await ws.send_text(ErrorMessage(refusal.code, str(refusal)).to_json())
        await ws.close(refusal.close_code, str(refusal)[:120])
        return
    outbox = Outbox(ws.send_text, ws.send_bytes)
    writer = asyncio.create_task(outbox.run(), name="browser-writer")
    validator = ClientValidator()
    session: CallSession | None = None
    transport: BrowserTransport | None = None
    unsubscribe = None
    close_code = CLOSE_NORMAL
    reason = "client closed"
    try:
        start = await _await_start(ws, validator, outbox, runtime.settings.start_timeout_s)
        if isinstance(start, int):
            close_code = start
            return
        transport = BrowserTransport(outbox)
        try:
            session = runtime.new_session(transport, "browser", start.caller)
        except CallRefused as exc:
            outbox.put(ErrorMessage(exc.code, str(exc)).to_json())
            close_code = exc.close_code
            return
        sid = session.id
        bind_session(session.id)

        def forward(event: Event) -> None:
            if event.session_id == sid:
                outbox.put(EventMessage(event).to_json())

        unsubscribe = runtime.bus.subscribe(forward)
        outbox.put(SessionMessage(session.id).to_json())
        await session.start()
        reason, close_code = await _pump(
            ws, session, transport, validator, outbox, start, runtime.settings.idle_timeout_s
        )
    except WebSocketDisconnect as exc:
        reason = disconnect_reason(exc.code)
    except Exception:
        log.exception("browser call failed")
        reason, close_code = "internal error", CLOSE_INTERNAL_ERROR
    finally:
        if session is not None:
            await runtime.end_session(session, reason)
        if unsubscribe is not None:
            unsubscribe()
        if transport is not None and not transport.closed.is_set() and close_code == CLOSE_NORMAL:
            outbox.put(EndMessage(reason).to_json())  # the page learns why the call ended
        outbox.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer, 2.0)
        writer.cancel()
        with contextlib.suppress(Exception):
            await ws.close(close_code)


async def _await_start(
    ws: WebSocket, validator: ClientValidator, outbox: Outbox, timeout_s: float
) -> StartMessage | int:
    """The client's ``start``, or the close code to end the connection with."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                try:
                    if message.get("bytes") is not None:
                        validator.audio(message["bytes"])
                        continue  # unreachable: audio before start raises
                    parsed = validator.text(message.get("text") or "")
                except BrowserProtocolError as exc:
                    log.warning("browser: %s", exc)
                    outbox.put(exc.to_message().to_json())
                    if exc.close_code is not None:
                        return exc.close_code
                    continue
                if isinstance(parsed, StartMessage):
                    return parsed
                if isinstance(parsed, PingMessage):
                    outbox.put(PongMessage().to_json())
    except TimeoutError:
        log.warning("browser: no start within %.0f s", timeout_s)
        outbox.put(ErrorMessage("not_started", f"no start within {timeout_s:.0f} s").to_json())
        return CLOSE_POLICY_VIOLATION


async def _pump(
    ws: WebSocket,
    session: CallSession,
    transport: BrowserTransport,
    validator: ClientValidator,
    outbox: Outbox,
    start: StartMessage,
    idle_timeout_s: float,
) -> tuple[str, int]:
    resampler = StreamResampler(start.sample_rate, 16000)
    frames = FrameAssembler()
    async with Inbox(ws, idle_timeout_s, transport.closed, session.ended) as inbox:
        async for message in inbox:
            try:
                data = message.get("bytes")
                if data is not None:
                    pcm = resampler.process(validator.audio(data))
                    for frame in frames.push(pcm):
                        session.feed(frame)
                    continue
                parsed = validator.text(message.get("text") or "")
            except BrowserProtocolError as exc:
                log.warning("session %s: %s", session.id, exc)
                session.emit("gateway.bad_message", protocol="browser", error=exc.message[:200])
                outbox.put(exc.to_message().to_json())
                if exc.close_code is not None:
                    return f"protocol error: {exc.code}", exc.close_code
                continue
            if isinstance(parsed, MarkMessage):
                session.on_mark(parsed.name)
            elif isinstance(parsed, DtmfMessage):
                session.on_dtmf(parsed.digit)
            elif isinstance(parsed, TextMessage):
                session.on_text(parsed.text)
            elif isinstance(parsed, PingMessage):
                outbox.put(PongMessage().to_json())
            elif isinstance(parsed, StopMessage):
                return "caller hung up", CLOSE_NORMAL
        if inbox.why == "idle":
            return "idle timeout", CLOSE_NORMAL
        if inbox.why == "stopped":
            return (transport.end_reason or session.end_reason or "ended"), CLOSE_NORMAL
        return disconnect_reason(inbox.close_code), CLOSE_NORMAL
