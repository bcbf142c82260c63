"""Voice scenarios: real-time calls through the real audio path, scored from their events.

Each turn's audio is the caller's text spoken by piper (or a WAV), varied by the run's
variant (noise, telephone band, speed: ``voice.perturb``), and streamed in real time by
the call client (``gateway.evaluation.client.run_call``) over Twilio or the browser protocol. The
call is then scored from what the caller received and from the gateway's event log:
transcripts against the expected words, ``nlu.result`` intents and slots, the tools,
events and replies required, how the call ended, the log's completeness and policy.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gateway.evaluation.checks import (
    audit_call,
    is_denial,
    missing_in_order,
    policy_violations,
    tokens_used,
    understanding,
    word_errors,
)
from gateway.evaluation.client import CallError, CallResult, Segment, load_caller_audio, run_call
from gateway.evaluation.gateway import Gateway
from gateway.evaluation.log import wait_for_stream
from gateway.evaluation.report import RunRecord, signature
from gateway.evaluation.scenario import Call, Turn, VoiceScenario, VoiceSuite, variant_params
from orchestration.log.events import Event
from orchestration.log.store import StoredEvent
from orchestration.patterns.bulkhead import shared_bulkhead
from voice.audio import SAMPLE_RATE, resample
from voice.config import TtsConfig
from voice.perturb import apply_variant
from voice.tts import PiperTTS

TAIL_S = 10.0  # a caller waits this long for an answer before hanging up


class CallerVoice:
    """The caller's speech: piper for text turns (cached per text), WAV files as given."""

    def __init__(self) -> None:
        self._tts: PiperTTS | None = None
        self._cache: dict[str, bytes] = {}

    def speak(self, text: str) -> bytes:
        if text not in self._cache:
            if self._tts is None:
                config = TtsConfig()
                self._tts = PiperTTS(config, shared_bulkhead("tts", config.workers, config.queue))
                self._tts.load()
            pcm = self._tts.synthesize_sync(text)
            self._cache[text] = resample(pcm, self._tts.sample_rate, SAMPLE_RATE)
        return self._cache[text]

    def audio(self, turn: Turn) -> bytes | None:
        if turn.say is not None:
            return self.speak(turn.say)
        if turn.audio is not None:
            return load_caller_audio(Path(turn.audio))
        if turn.silence_ms is not None:
            return bytes(turn.silence_ms * SAMPLE_RATE // 1000 * 2)
        return None


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def segments(call: Call, voice: CallerVoice, variant: str, seed: int) -> list[Segment]:
    kind, value = variant_params(variant)
    rng = np.random.default_rng(seed)
    out = []
    for turn in call.turns:
        pcm = voice.audio(turn)
        if pcm is not None and turn.silence_ms is None:
            pcm = apply_variant(pcm, kind, value, rng)
        out.append(Segment(
            pcm, dtmf=turn.dtmf or "",
            after_agent_quiet_ms=None if turn.barge_in_ms is not None else turn.after_quiet_ms,
            after_agent_audio_ms=turn.barge_in_ms, wait_limit_s=turn.wait_limit_s))
    return out


def _pairs(result: CallResult, logged: Sequence[StoredEvent]) -> list[tuple[str, dict[str, Any]]]:
    """The call's events in order: from the log when there is one (complete), else as
    the caller received them."""
    if logged:
        return [(e.type, dict(e.data)) for e in logged]
    return [(e.event.type, dict(e.event.data)) for e in result.events]


def by_turn(result: CallResult, count: int) -> list[list[Event]]:
    """The events the caller received, grouped by the turn (script segment) last started
    before each arrived: a turn's transcript, classification and answer come before the
    next turn starts (the caller waits for the agent), so a turn split in two by the
    recogniser stays one turn here. Events before the first turn (the greeting) are left
    out."""
    starts = [(e.t, int(e.detail["index"])) for e in result.of_kind("segment.started")]
    out: list[list[Event]] = [[] for _ in range(count)]
    for received in result.events:
        index = None
        for t, i in starts:
            if t > received.t:
                break
            index = i
        if index is not None and index < count:
            out[index].append(received.event)
    return out


def _after_merges(events: Sequence[Event]) -> Sequence[Event]:
    """A ``turn.merged`` means the caller went on after a pause and the pieces became one
    turn, whose ``stt.final`` (and classification) carries the earlier words too: what
    came before the last merge is superseded."""
    last = max((i for i, e in enumerate(events) if e.type == "turn.merged"), default=-1)
    return events[last + 1:]


def heard_text(events: Sequence[Event]) -> str:
    """What the gateway heard in one script turn: its final transcripts, in order, with
    a merged turn's earlier piece replaced by the merged whole."""
    finals: list[str] = []
    merged = False
    for e in events:
        if e.type == "turn.merged":
            merged = True
        elif e.type == "stt.final":
            text = str(e.data.get("text", ""))
            if merged and finals:
                finals[-1] = text
            else:
                finals.append(text)
            merged = False
    return " ".join(finals)


def _answered(events: Sequence[Event]) -> bool:
    types = [e.type for e in events]
    if "stt.final" not in types:
        return False
    final = types.index("stt.final")
    if "early_ms" in events[final].data:
        return True  # the agent got the turn early: its answer came before the stt.final
    after = types[final + 1:]
    return "agent.reply" in after or "agent.turn" in after


def _score_speech(record: RunRecord, call: Call, result: CallResult,
                  ) -> tuple[list[list[Event]], list[int]]:
    """Word errors and understanding (intents, slots) of the call's spoken turns; returns
    the events by turn and which turns were spoken."""
    turns = by_turn(result, len(call.turns))
    spoken = [i for i, t in enumerate(call.turns) if t.say is not None or t.audio is not None]
    for i in spoken:
        expected = call.turns[i].expected_transcript
        if expected is not None:
            heard = heard_text(turns[i])
            errors, words = word_errors(expected, heard)
            record.wer_errors += errors
            record.wer_words += words
            record.transcripts.append((expected, heard))
    # a turn the recogniser split in two is classified twice: its first result counts
    # (after a merge: the merged turn's)
    nlu = [next((dict(e.data) for e in _after_merges(turns[i]) if e.type == "nlu.result"),
                None) for i in spoken]
    u = understanding([(call.turns[i].intent, call.turns[i].slots) for i in spoken], nlu)
    record.intents_expected += u.intents_expected
    record.intents_correct += u.intents_correct
    record.slots_expected += u.slots_expected
    record.slots_correct += u.slots_correct
    return turns, spoken


def score_call(record: RunRecord, call: Call, result: CallResult,
               logged: Sequence[StoredEvent], audited: bool) -> dict[str, Any]:
    """Adds one call's figures and problems to ``record``; returns its signature part."""
    expect = call.expect
    pairs = _pairs(result, logged)
    types = [t for t, _ in pairs]
    if audited:
        record.audit += audit_call(logged, [e.event.seq for e in result.events])
    record.policy += policy_violations(pairs)
    denials = [t for t, d in pairs if is_denial(t, d)]
    record.denials += len(denials)
    record.tokens += tokens_used(d for _, d in pairs)

    turns, spoken = _score_speech(record, call, result)

    called = [str(d.get("tool")) for t, d in pairs if t == "tool.called"]
    succeeded = [str(d.get("tool")) for t, d in pairs if t == "tool.succeeded"]
    replies = " ".join(str(d.get("text", "")) for t, d in pairs if t == "agent.reply").lower()
    missing = {
        "tool": missing_in_order(expect.tools, succeeded),
        "event": missing_in_order(expect.events, types),
        "reply": [r for r in expect.replies if r.lower() not in replies],
        "denial": [d for d in expect.denials if d not in denials],
    }
    required = sum(len(x) for x in (expect.tools, expect.events, expect.replies, expect.denials))
    done = required - sum(len(x) for x in missing.values())
    if expect.answered and spoken:
        # a spoken turn is done when it was transcribed and the agent answered it
        answered = sum(1 for i in spoken if _answered(turns[i]))
        required += len(spoken)
        done += answered
        if answered < len(spoken):
            missing["turn"] = [f"{len(spoken) - answered} of {len(spoken)} spoken turns "
                               "(transcribed and answered)"]
    record.required += required
    record.done += done
    for kind, items in missing.items():
        record.outcome += [f"{kind} {item!r} did not happen" for item in items]
    record.outcome += [f"tool {t} was used but is forbidden" for t in expect.forbid_tools
                       if t in called or t in succeeded]
    record.outcome += [f"event {t} happened but is forbidden" for t in expect.forbid_events
                       if t in types]
    transfers = [str(d.get("target")) for t, d in pairs if t == "call.transfer"]
    if expect.transfer is not None:
        want = [expect.transfer] if expect.transfer else []
        if transfers != want:
            record.outcome.append(f"transfer {transfers or 'none'}, expected {want or 'none'}")
    if expect.ended_by is not None and result.ended_by != expect.ended_by:
        record.outcome.append(f"ended by {result.ended_by}, expected {expect.ended_by}")
    record.latencies_ms += [round(r.latency_s * 1000, 1) for r in result.response_latencies()
                            if r.latency_s is not None]
    record.duration_s += result.duration_s
    return {"tools": succeeded, "ended_by": result.ended_by, "transfer": transfers,
            "denials": denials,
            "memory": [d.get("kind") for t, d in pairs if t == "memory.write"]}


async def run_voice(suite: VoiceSuite, scenario: VoiceScenario, variant: str, repeat: int,
                    gateway: Gateway, voice: CallerVoice) -> RunRecord:
    record = RunRecord(suite.suite, scenario.name, scenario.tier, variant, repeat)
    protocol: Literal["twilio", "browser"] = scenario.protocol or suite.protocol
    parts = []
    cpu_total: float | None = 0.0
    for index, call in enumerate(scenario.calls):
        script = segments(call, voice, variant, _seed(suite.suite, scenario.name, variant,
                                                      repeat, index))
        before = gateway.server_cpu_s()
        try:
            result = await run_call(None, protocol, gateway.url, script=script,
                                    caller=call.caller, tail_s=TAIL_S,
                                    max_call_s=call.max_call_s,
                                    token=gateway.credentials.token,
                                    admin_token=gateway.credentials.admin_token,
                                    twilio_auth_token=gateway.credentials.twilio_auth_token)
        except CallError as exc:
            record.error = f"call {index + 1}: {exc}"
            return record
        after = gateway.server_cpu_s()
        if before is None or after is None or cpu_total is None:
            cpu_total = None
        else:
            cpu_total += after - before
        if result.session_id is None:
            why = (f"the gateway closed it ({result.close_code}: {result.close_reason})"
                   if result.close_reason else "no events reached the caller")
            record.error = f"call {index + 1}: no session id ({why})"
            return record
        record.ids.append(result.session_id)
        logged: list[StoredEvent] = []
        if gateway.data_dir is not None:
            # the log writer appends a moment after the bus: poll off the event loop
            logged = await asyncio.to_thread(wait_for_stream, gateway.data_dir / "events.db",
                                             f"call:{result.session_id}", "session.ended")
        parts.append(score_call(record, call, result, logged, gateway.data_dir is not None))
    # per call: a scenario of two calls costs two calls
    record.cpu_s = None if cpu_total is None else cpu_total / len(scenario.calls)
    record.tokens = round(record.tokens / len(scenario.calls))
    record.signature = signature(parts)
    return record
