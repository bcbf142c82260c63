"""How many whisper runs a turn costs, and which ones the session skips, with the real
tiny.en model and real speech streamed at real-time pace."""

from __future__ import annotations

import asyncio

from gateway.evaluation.speech import load_prompt
from orchestration.log.events import EventBus, EventRecorder
from tests.voice.fakes import FakeTransport, ScriptedAgent, ack_all, settle, silence
from voice.audio import FRAME_BYTES
from voice.config import VoiceConfig
from voice.ports import CallInfo
from voice.session import CallSession
from voice.stt import Transcript, WhisperSTT

# "press 1 to accept this recording press 2 to listen to it press 3 to rerecord your
# message": ~6 s with a pause after each option, so speculation runs at every pause
PAUSED, _ = load_prompt("vm-review")


class CountingWhisper:
    """The real recogniser, counting the jobs it is given (a wrapper, not a fake)."""

    def __init__(self, whisper: WhisperSTT) -> None:
        self.whisper = whisper
        self.runs = 0

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        self.runs += 1
        return await self.whisper.transcribe(pcm, prompt)


def real_session(stt: object) -> tuple[CallSession, FakeTransport, EventRecorder]:
    bus = EventBus()
    recorder = EventRecorder(bus)
    transport = FakeTransport()
    session = CallSession(CallInfo("runs", "test"), transport, ScriptedAgent(["Okay."]),
                          stt, _InstantTTS(), lambda text, _n: [text], bus,  # type: ignore[arg-type]
                          VoiceConfig())
    return session, transport, recorder


class _InstantTTS:
    sample_rate = 16000

    async def synthesize(self, text: str) -> bytes:
        return b"\0\0" * 160


async def paced(session: CallSession, pcm: bytes) -> None:
    """Frames at the pace a caller speaks them, so whisper runs while they talk."""
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        session.feed(pcm[i : i + FRAME_BYTES])
        await asyncio.sleep(0.02)


async def test_a_turn_says_how_many_whisper_runs_it_cost(whisper_tiny: WhisperSTT) -> None:
    stt = CountingWhisper(whisper_tiny)
    session, transport, recorder = real_session(stt)
    await session.start()
    await settle()
    await ack_all(session, transport)
    await paced(session, silence(200) + PAUSED + silence(1500))
    await settle()
    final = recorder.of_type("stt.final")
    assert len(final) == 1 and "accept" in final[0].data["text"].lower()
    # every run the recogniser was given is counted, and all but the delivered one wasted
    assert stt.runs >= 2  # the pauses inside the sentence started speculative runs
    assert final[0].data["stt_runs"] == stt.runs
    assert final[0].data["stt_wasted"] == stt.runs - 1
    await session.close("test over")
