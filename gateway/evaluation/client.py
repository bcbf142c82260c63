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
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from gateway.evaluation.call_end import FRAME_S, CallEnd
from gateway.evaluation.call_result import (
    BargeIn,
    CallError,
    CallResult,
    ResponseLatency,
    SentFrame,
    Utterance,
    format_transcript,
)
from gateway.evaluation.caller_audio import Protocol, Segment, load_caller_audio, voiced_frames
from gateway.evaluation.connect import CLOSE_WAIT_S, open_ws
from gateway.transports import browser_protocol as bp
from gateway.transports import twilio_protocol as tp
from voice.audio import (
    SAMPLE_RATE,
    resample,
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

REPLY_QUIET_S = 1.5  # agent silence that counts as "the reply is over"
STALL_S = 0.2  # a sender further behind than this resyncs instead of bursting
DEFAULT_CALLER = "+15005550006"


class _Call(CallEnd):
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
            params.update(self.parameters)
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
                state_ws = await open_ws(self.state_url, self.state_headers)
            except CallError as exc:
                self.result.errors.append(f"no events (transcripts) for this call: {exc}")
        try:
            ws = self._ws = await open_ws(self.url, self.headers)
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
    call_sid: str | None = None,
    parameters: Mapping[str, str] | None = None,
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
    ``admin_token`` (the event stream with the transcripts). A Twilio stream carries
    ``call_sid`` (else a new one) and the TwiML's ``parameters`` (``gateway/evaluation/phone.py``).
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
        call_sid=call_sid,
        parameters=parameters,
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
