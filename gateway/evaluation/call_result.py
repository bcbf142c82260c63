"""What the call client recorded, and the figures benchmarks read from it.

Every time is in seconds on the client's monotonic clock, relative to the moment the call
connected. "Sent" and "received" are the client's view: a benchmark measuring response
latency this way includes the network, as a real caller would hear it.
"""

from __future__ import annotations

import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gateway.errors import GatewayError
from orchestration.log.events import Event
from voice.audio import SAMPLE_RATE


class CallError(GatewayError):
    """The call could not be placed or the server broke the protocol.

    ``result`` holds whatever was recorded before the failure, if the call got that far.
    """

    def __init__(self, message: str, result: CallResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class SentFrame:
    """One 20 ms caller frame; ``segment`` is the script index, None for filler silence."""

    t: float
    index: int
    voiced: bool
    segment: int | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    t: float
    kind: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    t: float  # when the client received it (``event.ts`` is the server's wall clock)
    event: Event


@dataclass(frozen=True, slots=True)
class Utterance:
    t: float
    text: str


@dataclass(frozen=True, slots=True)
class ResponseLatency:
    """A user turn: its last voiced frame sent -> the first agent audio received after it."""

    turn_end: float
    last_voiced: float
    first_audio: float | None
    text: str

    @property
    def latency_s(self) -> float | None:
        return None if self.first_audio is None else self.first_audio - self.last_voiced


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Caller speech over agent playback: the first voiced frame sent while audio played ->
    the ``clear`` received (None if none came) and -> playback actually stopping."""

    voiced_at: float
    clear_at: float | None
    stopped_at: float | None

    @property
    def cleared(self) -> bool:
        return self.clear_at is not None

    @property
    def clear_latency_s(self) -> float | None:
        return None if self.clear_at is None else self.clear_at - self.voiced_at

    @property
    def stop_latency_s(self) -> float | None:
        return None if self.stopped_at is None else self.stopped_at - self.voiced_at


@dataclass
class CallResult:
    """The record of one call. Timeline kinds: started, session, segment.started,
    segment.ended, segment.wait_timeout, dtmf.sent, agent.audio (``first`` marks the start
    of a burst), playback.started, playback.stopped (``reason`` drained or clear),
    mark.received, mark.echoed (``played`` False for marks Twilio returns on clear),
    clear.received, server.error, end, hangup, sender.stall, error."""

    protocol: str
    url: str
    session_id: str | None = None
    stream_sid: str | None = None
    call_sid: str | None = None
    frames: list[SentFrame] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    events: list[ReceivedEvent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # caller (we hung up), agent (the server ended the call normally), server (it closed
    # with an error code: see close_code), error (it broke the protocol: CallError)
    ended_by: str | None = None
    hangup_reason: str | None = None
    end_reason: str | None = None  # the server's ``end`` message (browser)
    close_code: int | None = None
    close_reason: str = ""
    duration_s: float = 0.0
    agent_audio: bytes = b""  # what the caller heard: PCM16 16 kHz from t = 0

    def add(self, t: float, kind: str, **detail: Any) -> None:
        self.timeline.append(TimelineEntry(t, kind, MappingProxyType(detail)))

    def add_event(self, t: float, event: Event) -> None:
        self.events.append(ReceivedEvent(t, event))

    def of_kind(self, kind: str) -> list[TimelineEntry]:
        return [e for e in self.timeline if e.kind == kind]

    def events_of(self, type: str) -> list[ReceivedEvent]:
        return [e for e in self.events if e.event.type == type]

    def user_transcripts(self) -> list[Utterance]:
        return [
            Utterance(e.t, str(e.event.data.get("text", ""))) for e in self.events_of("stt.final")
        ]

    def agent_replies(self) -> list[Utterance]:
        """``agent.reply`` texts, or the spoken sentences (``tts.started``) if there are none."""
        replies = self.events_of("agent.reply") or self.events_of("tts.started")
        return [Utterance(e.t, str(e.event.data.get("text", ""))) for e in replies]

    def voiced_times(self) -> list[float]:
        return [f.t for f in self.frames if f.voiced]

    def response_latencies(self) -> list[ResponseLatency]:
        """One entry per user turn. Turns end at each ``stt.final``; without events, at the
        end of each script segment. Agent audio counts from the first burst that starts
        after the turn's last voiced frame (or, if the agent never went quiet, the first
        audio after the turn's end)."""
        turns = [(u.t, u.text) for u in self.user_transcripts()]
        if not turns:
            turns = [(e.t, "") for e in self.of_kind("segment.ended")]
        audio = self.of_kind("agent.audio")
        voiced = self.voiced_times()
        out: list[ResponseLatency] = []
        previous_end = float("-inf")
        for turn_end, text in turns:
            spoken = [t for t in voiced if previous_end < t <= turn_end]
            previous_end = turn_end
            if not spoken:
                continue  # a typed turn, or one the client did not speak
            last = spoken[-1]
            first = next((a.t for a in audio if a.t > last and a.detail.get("first")), None)
            if first is None:
                first = next((a.t for a in audio if a.t > turn_end), None)
            out.append(ResponseLatency(turn_end, last, first, text))
        return out

    def playback_periods(self) -> list[tuple[float, float | None, str | None]]:
        """(started, stopped, reason) for each stretch of agent audio playing."""
        periods: list[tuple[float, float | None, str | None]] = []
        start: float | None = None
        for e in self.timeline:
            if e.kind == "playback.started":
                start = e.t
            elif e.kind == "playback.stopped" and start is not None:
                periods.append((start, e.t, str(e.detail.get("reason"))))
                start = None
        if start is not None:
            periods.append((start, None, None))
        return periods

    def barge_ins(self) -> list[BargeIn]:
        """Each playback stretch during which the caller spoke (``cleared`` tells real
        barge-ins, answered by ``clear``, from speech over a reply that ended by itself)."""
        clears = [e.t for e in self.of_kind("clear.received")]
        voiced = self.voiced_times()
        out = []
        for start, stop, _ in self.playback_periods():
            end = float("inf") if stop is None else stop
            first = next((t for t in voiced if start <= t < end), None)
            if first is None:
                continue
            clear = next((t for t in clears if first <= t <= end), None)
            out.append(BargeIn(first, clear, stop))
        return out

    def save_agent_audio(self, path: Path) -> None:
        """The agent as the caller heard it: silence where nothing played, cut at clears."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(self.agent_audio)


def format_transcript(result: CallResult) -> str:
    """Both sides with timings, e.g. ``[  1.23s] caller: ...`` / ``[  2.01s] agent: ...``."""
    who = result.session_id or "no session"
    lines = [
        f"call over {result.protocol} ({who}): {result.duration_s:.2f} s, "
        f"ended by {result.ended_by or 'unknown'}"
        + (
            f" ({result.hangup_reason or result.end_reason})"
            if result.hangup_reason or result.end_reason
            else ""
        )
    ]
    items: list[tuple[float, str, str]] = [
        (u.t, "caller", u.text) for u in result.user_transcripts()
    ]
    replies = result.agent_replies()
    items += [(u.t, "agent", u.text) for u in replies]
    if not replies:  # no events (e.g. no /ws/state): show when the agent spoke at least
        for start, stop, _ in result.playback_periods():
            length = f"{(stop or result.duration_s) - start:.1f} s"
            items.append((start, "agent", f"<audio {length}>"))
    items += [(e.t, "--", "agent interrupted (clear)") for e in result.of_kind("clear.received")]
    lines += [f"[{t:7.2f}s] {side}: {text}" for t, side, text in sorted(items, key=lambda i: i[0])]
    latencies = [r.latency_s for r in result.response_latencies() if r.latency_s is not None]
    if latencies:
        lines.append("response latency: " + ", ".join(f"{s:.2f} s" for s in latencies))
    lines += [f"error: {e}" for e in result.errors]
    return "\n".join(lines)
