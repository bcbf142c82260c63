"""A caller in a box: places one call over the Twilio or browser protocol and records it.

Used by ``voxgate call``, the end-to-end tests and the latency benchmarks, so it behaves like
the far end of a real call rather than like a test double:

* caller audio leaves in 20 ms frames paced in real time, and silence frames keep flowing
  after the file ends, because a phone line is never quiet;
* agent audio plays through an emulated loudspeaker that drains in real time: marks are
  echoed only once playback has passed them, and ``clear`` empties the speaker at once. On
  Twilio the pending marks then come back too, as Twilio does: "If your server sends a clear
  message, Twilio empties the audio buffer and sends back mark messages matching any
  remaining mark messages from your server" (Media Streams WebSocket messages, "Mark
  message"). On the browser protocol dropped marks are not echoed (docs/protocol.md);
* every step lands on a timeline with monotonic times relative to the call start, which is
  what ``CallResult``'s latency helpers read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import operator
import time
import uuid
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import numpy as np
import soxr
import webrtcvad
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gateway.evaluation.call_result import (
    BargeIn,
    CallError,
    CallResult,
    ResponseLatency,
    SentFrame,
    Utterance,
    format_transcript,
)
from gateway.evaluation.playback import PlaybackDevice
from gateway.transports import browser_protocol as bp
from gateway.transports import twilio_protocol as tp
from orchestration.log.events import Event
from voice.audio import (
    SAMPLE_RATE,
    SUPPORTED_RATES,
    FrameAssembler,
    level,
    resample,
    ulaw_decode,
    ulaw_encode,
)

__all__ = [
    "BargeIn",
    "CallError",
    "CallResult",
    "ResponseLatency",
    "Segment",
    "SentFrame",
    "Utterance",
    "format_transcript",
    "load_caller_audio",
    "run_call",
    "voiced_frames",
]

Protocol = Literal["twilio", "browser"]

FRAME_S = 0.02
FRAME_BYTES_16K = 640
VAD_AGGRESSIVENESS = 3
VOICE_FLOOR = 0.0056  # RMS of about -45 dBFS: webrtcvad alone flags faint noise as speech
REPLY_QUIET_S = 1.5  # agent silence that counts as "the reply is over"
CLOSE_WAIT_S = 2.0
CONNECT_TIMEOUT_S = 5.0
STALL_S = 0.2  # a sender further behind than this resyncs instead of bursting
MAX_EVENTS = 100_000
MAX_WIRE_BYTES = 4 * 1024 * 1024
DEFAULT_CALLER = "+15005550006"


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of caller audio in a scripted call.

    ``gap_ms`` of silence goes out first. Then, optionally, the segment waits: with
    ``after_agent_audio_ms`` it starts that long after agent audio begins playing (to
    provoke a barge-in); with ``after_agent_quiet_ms`` it starts once the agent has spoken
    and then been quiet that long (a polite caller). Neither wait lasts beyond
    ``wait_limit_s``. ``dtmf`` digits are pressed when the segment starts.
    """

    audio: Path | bytes | None = None
    gap_ms: int = 0
    after_agent_audio_ms: int | None = None
    after_agent_quiet_ms: int | None = None
    dtmf: str = ""
    wait_limit_s: float = 8.0


# --- caller audio --------------------------------------------------------------------


def _to_int16(raw: bytes, width: int, channels: int) -> np.ndarray:
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    elif width == 4:
        samples = np.frombuffer(raw, "<i4") >> 16
    else:
        raise CallError(f"unsupported WAV sample width: {width} bytes")
    if channels > 1:
        samples = samples[: samples.size // channels * channels].reshape(-1, channels).mean(axis=1)
    return np.asarray(samples, dtype="<i2")


def load_caller_audio(source: Path | bytes) -> bytes:
    """Caller audio as PCM16 mono 16 kHz.

    ``source`` is a WAV file (any rate, width and channel count), the bytes of one, or raw
    PCM16 mono 16 kHz bytes.
    """
    if isinstance(source, bytes) and not source.startswith(b"RIFF"):
        if len(source) % 2:
            raise CallError(f"raw caller audio must be PCM16: {len(source)} bytes is odd")
        return source
    name = "WAV bytes" if isinstance(source, bytes) else str(source)
    try:
        with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise CallError(f"cannot read {name}: {exc}") from None
    pcm = _to_int16(raw, width, channels).tobytes()
    if rate in SUPPORTED_RATES:
        return resample(pcm, rate, SAMPLE_RATE)
    # voice.audio only takes the rates the pipeline uses; a caller's file may be 44.1 kHz
    out = soxr.resample(np.frombuffer(pcm, "<i2"), rate, SAMPLE_RATE, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())


def _frames(pcm: bytes) -> list[bytes]:
    assembler = FrameAssembler(FRAME_BYTES_16K)
    frames = list(assembler.push(pcm))
    if assembler.pending():
        frames += list(assembler.push(bytes(FRAME_BYTES_16K - assembler.pending())))
    return frames


def voiced_frames(pcm: bytes) -> list[bool]:
    """Which 20 ms frames of PCM16 16 kHz audio carry speech: webrtcvad at aggressiveness 3
    and an energy floor, so a benchmark's "last voiced frame" is the end of real speech."""
    vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
    return [vad.is_speech(f, SAMPLE_RATE) and level(f) >= VOICE_FLOOR for f in _frames(pcm)]


def _wire_frames(pcm: bytes, protocol: Protocol) -> list[bytes]:
    """The segment as it goes on the wire: 640-byte PCM16 frames or 160-byte mu-law ones."""
    frames = _frames(pcm)
    if protocol == "browser":
        return frames
    ulaw = ulaw_encode(resample(b"".join(frames), SAMPLE_RATE, 8000))
    ulaw = ulaw.ljust(160 * len(frames), ulaw_encode(b"\0\0"))
    return [ulaw[i * 160 : (i + 1) * 160] for i in range(len(frames))]


def _endpoint(url: str, path: str) -> str:
    """``url`` may be the gateway's base (http, https, ws, wss) or a full ``/ws/...`` URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise CallError(f"not a gateway URL: {url!r} (expected http(s):// or ws(s)://)")
    base = parts.path.split("/ws/")[0].rstrip("/")
    return urlunsplit((scheme, parts.netloc, base + path, parts.query, ""))


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"token": token})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def twilio_signature(url: str, auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends when it opens a media stream at ``url``
    (no form parameters), so a production gateway lets this client in."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(auth_token).compute_signature(url, {}))


async def _open(url: str, headers: dict[str, str] | None = None) -> ClientConnection:
    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=CONNECT_TIMEOUT_S,
            close_timeout=CLOSE_WAIT_S,
            max_size=MAX_WIRE_BYTES,
            compression=None,
        )
    except InvalidStatus as exc:
        raise CallError(f"{url} refused the WebSocket: HTTP {exc.response.status_code}") from None
    except TimeoutError:
        raise CallError(f"timed out connecting to {url}") from None
    except (OSError, WebSocketException) as exc:
        raise CallError(f"cannot connect to {url}: {exc}") from None


# --- the call ------------------------------------------------------------------------


class _Call:
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
    ) -> None:
        self.protocol = protocol
        self.twilio = protocol == "twilio"
        # the widget token opens a browser call; the admin token the event stream, in a
        # header: never in a URL, where logs keep it
        self.url = _with_token(_endpoint(url, f"/ws/{protocol}"), token)
        self.state_url = _endpoint(url, "/ws/state")
        self.state_headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
        # a production gateway checks Twilio's signature on the stream upgrade
        self.headers = ({"X-Twilio-Signature": twilio_signature(self.url, twilio_auth_token)}
                        if self.twilio and twilio_auth_token else None)
        self.realtime = realtime
        self.tail_s = tail_s
        self.hangup_after_reply = hangup_after_reply
        self.caller = caller
        self.max_call_s = max_call_s
        self.clock = clock
        self.prepared: list[tuple[Segment, list[bytes], list[bool]]] = []
        for seg in segments:
            pcm = load_caller_audio(seg.audio) if seg.audio is not None else b""
            self.prepared.append((seg, _wire_frames(pcm, protocol), voiced_frames(pcm)))
        self.silence = ulaw_encode(bytes(320)) if self.twilio else bytes(FRAME_BYTES_16K)
        self.playback = PlaybackDevice(8000 if self.twilio else SAMPLE_RATE)
        self.result = CallResult(protocol=protocol, url=self.url)
        if self.twilio:
            self.result.stream_sid = "MZ" + uuid.uuid4().hex
            self.result.call_sid = "CA" + uuid.uuid4().hex
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

    # --- speaking ---------------------------------------------------------------------

    async def _pace(self, paced: bool = True) -> bool:
        """Wait for the next 20 ms slot; False once the call is over."""
        if self.done.is_set():
            return False
        if self.now() > self.max_call_s:
            self.result.hangup_reason = self.result.hangup_reason or "max call length"
            return False
        if not paced:
            await asyncio.sleep(0)
            self._next = self.now()
            return not self.done.is_set()
        delay = self._next - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -STALL_S:
            self.result.add(self.now(), "sender.stall", behind_ms=int(-delay * 1000))
            self._next = self.now()
        self._next += FRAME_S
        return not self.done.is_set()

    async def _send_frame(self, payload: bytes, voiced: bool, segment: int | None) -> None:
        t = self.now()
        index = len(self.result.frames)
        if self.twilio:
            media = tp.MediaMessage(
                self._seq_next(), self.result.stream_sid or "", index + 1, index * 20, payload
            )
            sent = await self._send(media.to_json())
        else:
            sent = await self._send(payload)
        if not sent:
            return
        self.result.frames.append(SentFrame(t, index, voiced, segment))
        if voiced:
            self._last_voiced = t

    async def _silence_until(self, ready: Callable[[float], bool]) -> bool:
        while not ready(self.now()):
            if not await self._pace():
                return False
            await self._send_frame(self.silence, False, None)
        return True

    def _wait_ready(self, seg: Segment, since: float, limit_at: float) -> Callable[[float], bool]:
        def ready(t: float) -> bool:
            started = self._play_started
            heard = started is not None and started >= since
            if seg.after_agent_audio_ms is not None:
                ok = heard and started is not None and t >= started + seg.after_agent_audio_ms / 1e3
            else:
                quiet_s = (seg.after_agent_quiet_ms or 0) / 1000
                ok = heard and not self.playback.busy and t - self._idle_since >= quiet_s
            if not ok and t >= limit_at:
                self.result.add(t, "segment.wait_timeout")
                return True
            return ok

        return ready

    def _call_over(self, t: float) -> bool:
        if self.playback.busy:
            return False
        replied = self._last_agent_audio is not None and (
            self._last_voiced is None or self._last_agent_audio > self._last_voiced
        )
        if self.hangup_after_reply and replied and t - self._idle_since >= REPLY_QUIET_S:
            self.result.hangup_reason = "reply heard"
            return True
        quiet_from = max(self._script_end, self._last_agent_audio or 0.0, self._idle_since)
        if t - quiet_from >= self.tail_s:
            self.result.hangup_reason = f"no agent audio for {self.tail_s:g} s"
            return True
        return False

    async def _speak(self) -> None:
        since = 0.0
        for index, (seg, frames, voiced) in enumerate(self.prepared):
            gap_end = self.now() + seg.gap_ms / 1000
            if not await self._silence_until(functools.partial(operator.le, gap_end)):
                return
            if seg.after_agent_audio_ms is not None or seg.after_agent_quiet_ms is not None:
                ready = self._wait_ready(seg, since, self.now() + seg.wait_limit_s)
                if not await self._silence_until(ready):
                    return
            self.result.add(self.now(), "segment.started", index=index)
            for digit in seg.dtmf:
                await self._send_dtmf(digit)
            for frame, is_voiced in zip(frames, voiced, strict=True):
                if not await self._pace(self.realtime):
                    return
                await self._send_frame(frame, is_voiced, index)
            since = self.now()
            self.result.add(since, "segment.ended", index=index)
        self._script_end = self.now()
        if await self._silence_until(self._call_over):
            self.result.ended_by = self.result.ended_by or "caller"

    async def _send_dtmf(self, digit: str) -> None:
        self.result.add(self.now(), "dtmf.sent", digit=digit)
        if self.twilio:
            sid = self.result.stream_sid or ""
            await self._send(tp.DtmfMessage(self._seq_next(), sid, digit).to_json())
        else:
            await self._send(bp.DtmfMessage(digit).to_json())

    # --- the whole call ---------------------------------------------------------------

    async def _hang_up(self, ws: ClientConnection) -> None:
        self.result.add(self.now(), "hangup", reason=self.result.hangup_reason or "")
        if self.twilio:
            sid, call_sid = self.result.stream_sid or "", self.result.call_sid or ""
            stop = tp.StopMessage(self._seq_next(), sid, self.account_sid, call_sid)
            await self._send(stop.to_json())
            return  # Twilio closes the socket right after stop
        await self._send(bp.StopMessage().to_json())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), CLOSE_WAIT_S)

    async def _start(self) -> None:
        if self.twilio:
            await self._send(tp.ConnectedMessage().to_json())
            params = {"caller": self.caller} if self.caller is not None else {}
            start = tp.StartMessage(
                self._seq_next(),
                self.result.stream_sid or "",
                self.account_sid,
                self.result.call_sid or "",
                ("inbound",),
                params,
            )
            await self._send(start.to_json())
        else:
            await self._send(bp.StartMessage(SAMPLE_RATE, self.caller).to_json())
        self.result.add(self.now(), "started")

    async def run(self) -> CallResult:
        state_ws = None
        if self.twilio:
            try:
                state_ws = await _open(self.state_url, self.state_headers)
            except CallError as exc:
                self.result.errors.append(f"no events (transcripts) for this call: {exc}")
        try:
            ws = self._ws = await _open(self.url, self.headers)
        except CallError:
            if state_ws is not None:
                await state_ws.close()
            raise
        self.t0 = self.clock()
        tasks = [
            asyncio.create_task(self._listen(ws)),
            asyncio.create_task(self._tick()),
        ]
        if state_ws is not None:
            tasks.append(asyncio.create_task(self._read_state(state_ws)))
        try:
            await self._start()
            await self._speak()
            if self.bad is None and not self.done.is_set():
                self.result.ended_by = self.result.ended_by or "caller"
                await self._hang_up(ws)
        finally:
            await ws.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), CLOSE_WAIT_S)
            if state_ws is not None and self.result.session_id is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.session_ended.wait(), CLOSE_WAIT_S)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if state_ws is not None:
                await state_ws.close()
        self.result.close_code = ws.close_code
        self.result.close_reason = ws.close_reason or ""
        if self.result.ended_by is None:  # the server ended it: normally, or not
            normal = self.bad is None and ws.close_code == bp.CLOSE_NORMAL
            self.result.ended_by = "agent" if normal else "error" if self.bad else "server"
        self.result.duration_s = self.now()
        self.playback.advance(self.result.duration_s)
        self.result.agent_audio = resample(
            bytes(self.playback.played), self.playback.rate, SAMPLE_RATE
        )
        if self.bad is not None:
            raise CallError(self.bad, self.result)
        return self.result


async def run_call(
    wav: Path | bytes | None,
    protocol: Protocol,
    url: str,
    *,
    realtime: bool = True,
    tail_s: float = 8.0,
    hangup_after_reply: bool = True,
    script: Sequence[Segment] | None = None,
    caller: str | None = DEFAULT_CALLER,
    save_agent_audio: Path | None = None,
    max_call_s: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
    token: str | None = None,
    admin_token: str | None = None,
    twilio_auth_token: str | None = None,
) -> CallResult:
    """Place one call to the gateway at ``url`` and return what happened.

    ``wav`` (a WAV path, WAV bytes or raw PCM16 16 kHz) is spoken once the agent's greeting
    has played; pass ``script`` instead for several segments with gaps or barge-ins. The
    caller hangs up ``REPLY_QUIET_S`` after the agent's reply to the last segment has played
    (``hangup_after_reply``), or once no agent audio came for ``tail_s``, or at
    ``max_call_s``; the agent may hang up first. ``realtime=False`` sends the segments as
    fast as the socket takes them (silence keeps its real-time pace). Raises ``CallError``
    when the call cannot be placed or the server breaks the protocol (``.result`` then holds
    what was recorded). A production gateway wants ``token`` (a widget token, browser
    calls), ``twilio_auth_token`` (to sign a Twilio stream as Twilio does) and
    ``admin_token`` (the event stream with the transcripts).
    """
    if (wav is None) == (script is None):
        raise CallError("pass either a caller WAV or a script of segments")
    segments = list(script) if script is not None else [Segment(wav, after_agent_quiet_ms=600)]
    call = _Call(
        protocol,
        url,
        segments,
        token=token,
        admin_token=admin_token,
        twilio_auth_token=twilio_auth_token,
        realtime=realtime,
        tail_s=tail_s,
        hangup_after_reply=hangup_after_reply,
        caller=caller,
        max_call_s=max_call_s,
        clock=clock,
    )
    result = await call.run()
    if save_agent_audio is not None:
        result.save_agent_audio(save_agent_audio)
    return result
