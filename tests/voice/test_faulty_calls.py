"""Whole calls over /ws/twilio while the recogniser or the voice fails: the caller hears an
apology and the call goes on.

The gateway runs on a loopback port with the agents behind it; its models are the real
Moonshine and piper wrapped in ``FaultySTT`` / ``FaultyTTS``, which raise when told to
(after really transcribing, or instead of synthesising one chosen sentence). The caller
is piper speaking, sent as mu-law, paced in real time. "Heard" is checked the way the
far end reports it: the mark after the apology came back as played.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.line import TODAY
from gateway.server import ServerThread
from orchestration.agents.system import AgentSystem
from orchestration.log.events import EventBus
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import resample
from voice.config import SttConfig, TtsConfig
from voice.moonshine import MoonshineSTT
from voice.services import VoiceServices
from voice.stt import SttError, Transcript
from voice.stt_jobs import Ticket
from voice.tts import PiperTTS, TtsError

pytestmark = pytest.mark.slow


def never(_text: str) -> bool:
    return False


class FaultySTT(MoonshineSTT):
    """The real default recogniser (Moonshine) that raises when the words it heard match
    ``fails``."""

    def __init__(self, config: SttConfig, data_dir: Path, bulkhead: Bulkhead) -> None:
        super().__init__(config, data_dir, bulkhead)
        self.fails: Callable[[str], bool] = never

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        return self._check(await super().transcribe(pcm, prompt))

    async def speculate(self, pcm: bytes, prompt: str | None, ticket: Ticket) -> Transcript:
        return self._check(await super().speculate(pcm, prompt, ticket))

    def _check(self, transcript: Transcript) -> Transcript:
        if self.fails(transcript.text):
            raise SttError(f"faulty recogniser: refused {transcript.text!r}")
        return transcript


class FaultyTTS(PiperTTS):
    """The real piper voice that raises instead of synthesising a sentence ``fails``
    picks; the kept apology was made when it loaded, before any fault."""

    def __init__(self, config: TtsConfig, bulkhead: Bulkhead) -> None:
        super().__init__(config, bulkhead)
        self.fails: Callable[[str], bool] = never

    async def synthesize(self, text: str) -> bytes:
        if self.fails(text):
            raise TtsError(f"faulty voice: refused {text!r}")
        return await super().synthesize(text)


@dataclass
class Gateway:
    server: ServerThread
    stt: FaultySTT
    tts: FaultyTTS
    settings: Settings


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data)
    settings.voice.turn.reprompt_after_s = 10
    config = settings.voice
    stt_pool = Bulkhead("faulty-stt", config.stt.workers, config.stt.queue)
    tts_pool = Bulkhead("faulty-tts", config.tts.workers, config.tts.queue)
    stt, tts = FaultySTT(config.stt, data, stt_pool), FaultyTTS(config.tts, tts_pool)
    voice = VoiceServices(config, stt, tts, stt_pool, tts_pool)
    bus = EventBus()
    # a fixed today: "Tuesday" is said back as "tomorrow" on a Monday
    system = AgentSystem(bus, data, today=lambda: TODAY)
    app = create_app(settings, voice=voice, agent_factory=system.agent, bus=bus)
    with ServerThread(app) as running:
        yield Gateway(running, stt, tts, settings)
    stt_pool.shutdown()
    tts_pool.shutdown()


def speech(tts: PiperTTS, text: str) -> bytes:
    return resample(tts.synthesize_sync(text), tts.sample_rate, 16000)


def turn(tts: PiperTTS, text: str) -> Segment:
    return Segment(speech(tts, text), after_agent_quiet_ms=600, wait_limit_s=60)


def call(gw: Gateway, script: list[Segment], caller: str) -> CallResult:
    return asyncio.run(run_call(None, "twilio", gw.server.url, script=script, caller=caller,
                                tail_s=20.0, max_call_s=180))


def events(result: CallResult, type: str) -> list[dict[str, Any]]:
    return [dict(e.event.data) for e in result.events_of(type)]


def played(result: CallResult, reply_id: str) -> list[str]:
    """The marks of ``reply_id`` the far end reported as played."""
    return [str(e.detail["name"]) for e in result.of_kind("mark.echoed")
            if e.detail["played"] and str(e.detail["name"]).startswith(reply_id + ":")]


def sent_marks(result: CallResult, reply_id: str) -> list[str]:
    return [str(e.detail["name"]) for e in result.of_kind("mark.received")
            if str(e.detail["name"]).startswith(reply_id + ":")]


def said(result: CallResult) -> str:
    heard = " | ".join(u.text for u in result.user_transcripts())
    return " ".join(u.text for u in result.agent_replies()) + f"  [caller: {heard}]"


def once(words: str) -> Callable[[str], bool]:
    """Fail the first sentence containing ``words``, then work again."""
    left = [1]

    def fails(text: str) -> bool:
        if words in text and left[0] > 0:
            left[0] -= 1
            return True
        return False

    return fails


def test_a_sentence_the_voice_cannot_say_is_an_apology_and_the_booking_goes_on(
        gateway: Gateway, piper_joe: PiperTTS) -> None:
    gateway.tts.fails = once("shall I book it?")
    try:
        result = call(gateway, [
            turn(piper_joe, "I'd like to book an appointment on Tuesday at three p.m."),
            # the caller did not hear the question, so asks again
            turn(piper_joe, "I'd like to book an appointment on Tuesday at three p.m."),
            turn(piper_joe, "Yes, please."),
        ], caller="+15550200001")
    finally:
        gateway.tts.fails = never
    errors = events(result, "tts.error")
    # the reply is cut after its opening clause ("Tuesday at 3 PM,"): the part that failed
    assert [e["text"] for e in errors] == ["shall I book it?"], said(result)
    apology = events(result, "tts.apology")
    assert len(apology) == 1, said(result)
    reply = apology[0]["reply_id"]
    # the apology is the last thing sent for that reply, and the far end played it
    assert sent_marks(result, reply)[-1] in played(result, reply), said(result)
    assert "You're booked for" in said(result)
    assert not events(result, "session.error")


def test_a_voice_that_fails_for_good_still_apologises_and_hangs_up(
        gateway: Gateway, piper_joe: PiperTTS) -> None:
    gateway.tts.fails = lambda _text: True  # from the greeting on
    try:
        result = call(gateway, [turn(piper_joe, "Goodbye.")], caller="+15550200002")
    finally:
        gateway.tts.fails = never
    apologies = events(result, "tts.apology")
    assert len(apologies) == 2, said(result)  # the greeting's, the goodbye's
    for apology in apologies:
        reply = apology["reply_id"]
        assert sent_marks(result, reply) and set(sent_marks(result, reply)) <= set(
            played(result, reply)), said(result)
    assert [e["reason"] for e in events(result, "call.hangup")] == ["caller said goodbye"]
    assert result.ended_by == "agent"


def test_a_turn_the_recogniser_fails_on_is_an_apology_and_the_call_goes_on(
        gateway: Gateway, piper_joe: PiperTTS) -> None:
    gateway.stt.fails = lambda text: "weather" in text.lower()
    try:
        result = call(gateway, [
            turn(piper_joe, "What's the weather like in Paris?"),
            turn(piper_joe, "What's the status of the payment service?"),
            turn(piper_joe, "Goodbye."),
        ], caller="+15550200003")
    finally:
        gateway.stt.fails = never
    assert events(result, "stt.error"), said(result)
    text = gateway.settings.voice.turn.stt_error_text
    apology = [e for e in events(result, "agent.reply") if e["text"] == text]
    assert len(apology) == 1, said(result)
    reply = apology[0]["reply_id"]
    assert set(sent_marks(result, reply)) <= set(played(result, reply)), said(result)
    intents = [e["intent"] for e in events(result, "nlu.result")]
    assert intents[-2:] == ["status_check", "goodbye"], said(result)
    assert result.ended_by == "agent"


def test_the_kept_apology_was_made_when_the_voice_loaded(gateway: Gateway) -> None:
    from voice.replies import kept

    assert kept(gateway.tts, gateway.settings.voice.turn.tts_error_text)

