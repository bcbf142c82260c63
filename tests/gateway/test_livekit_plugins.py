"""voxgate's STT, TTS and VAD as livekit-agents plugins, on real speech and real models:
each on its own, then the three inside a livekit-agents ``AgentSession`` (its own audio
input and output, no room: the session's pipeline is what is under test here; the
LiveKit server tests put the worker in a real room)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm, vad
from livekit.agents.voice import io
from livekit.agents.voice.events import (
    ConversationItemAddedEvent,
    UserInputTranscribedEvent,
)

from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.livekit.plugins import STT, TTS, VAD, pcm_frame
from voice.audio import SAMPLE_RATE, resample

pytestmark = pytest.mark.slow

PROMPT = "agent-pass"  # "Please enter your password followed by the pound key."
MIC_RATE = 48_000  # what a LiveKit room delivers
FRAME_MS = 20


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[STT, TTS, VAD]]:
    yield STT.load(data_dir=tmp_path_factory.mktemp("lk-plugins")), TTS.load(), VAD()


def mic_frames(pcm16k: bytes) -> list[rtc.AudioFrame]:
    """``pcm16k`` as a room's 48 kHz microphone would deliver it, 20 ms a frame."""
    pcm = resample(pcm16k, SAMPLE_RATE, MIC_RATE)
    step = MIC_RATE * FRAME_MS // 1000 * 2
    return [pcm_frame(pcm[i:i + step], MIC_RATE) for i in range(0, len(pcm) - step + 1, step)]


async def test_stt_recognizes_a_prompt(plugins: tuple[STT, TTS, VAD]) -> None:
    stt, _, _ = plugins
    pcm, text = load_prompt(PROMPT)
    event = await stt.recognize(mic_frames(pcm))
    heard = event.alternatives[0].text
    assert word_error_rate(text, heard) <= 0.2, heard
    assert 0.0 < event.alternatives[0].confidence <= 1.0


async def test_stt_refuses_another_language(plugins: tuple[STT, TTS, VAD]) -> None:
    from livekit.agents import APIError

    stt, _, _ = plugins
    with pytest.raises(APIError, match="English only"):
        await stt.recognize(mic_frames(load_prompt(PROMPT)[0]), language="fr")


async def test_tts_round_trip_through_stt(plugins: tuple[STT, TTS, VAD]) -> None:
    stt, tts, _ = plugins
    frame = await tts.synthesize("Your table for two is booked at seven.").collect()
    assert frame.sample_rate == tts.sample_rate == 22_050
    assert frame.duration > 1.0
    event = await stt.recognize(frame)
    # piper renders a sentence a little differently in each process: a word in eight may
    # be misheard ("cable for two" once in CI), the sentence may not
    heard = event.alternatives[0].text
    assert word_error_rate("Your table for two is booked at seven.", heard) <= 0.125, heard


async def test_vad_cuts_one_utterance(plugins: tuple[STT, TTS, VAD]) -> None:
    _, _, detector = plugins
    pcm, _ = load_prompt(PROMPT)
    silence = bytes(SAMPLE_RATE * 2)  # 1 s
    stream = detector.stream()
    for frame in mic_frames(silence + pcm + silence):
        stream.push_frame(frame)
    stream.end_input()
    events = [e async for e in stream]
    kinds = [e.type for e in events if e.type != vad.VADEventType.INFERENCE_DONE]
    assert kinds == [vad.VADEventType.START_OF_SPEECH, vad.VADEventType.END_OF_SPEECH]
    end = next(e for e in events if e.type == vad.VADEventType.END_OF_SPEECH)
    speech_s = len(pcm) / 2 / SAMPLE_RATE
    # the utterance: the speech, its pre-roll and the closing silence, 16 kHz
    assert end.frames[0].sample_rate == SAMPLE_RATE
    assert speech_s - 0.5 < end.frames[0].duration < speech_s + 1.2


# --- inside an AgentSession ----------------------------------------------------------


class WavInput(io.AudioInput):
    """A caller: silence, one prompt, then silence for ever, paced in real time."""

    def __init__(self, pcm16k: bytes) -> None:
        super().__init__(label="wav")
        lead = bytes(SAMPLE_RATE * 2 // 2)  # 0.5 s
        self._frames = iter(mic_frames(lead + pcm16k))
        self._quiet = pcm_frame(bytes(MIC_RATE * FRAME_MS // 1000 * 2), MIC_RATE)
        self._next_at = 0.0

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.monotonic()
        self._next_at = max(self._next_at, now) + FRAME_MS / 1000
        await asyncio.sleep(max(0.0, self._next_at - FRAME_MS / 1000 - now))
        return next(self._frames, self._quiet)


class Speaker(io.AudioOutput):
    """A loudspeaker that keeps what it was given and plays it out at once."""

    def __init__(self) -> None:
        super().__init__(label="speaker", capabilities=io.AudioOutputCapabilities(pause=False))
        self.frames: list[rtc.AudioFrame] = []
        self._pushed = 0.0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if self._pushed == 0.0:
            self.on_playback_started(created_at=time.time())
        await super().capture_frame(frame)
        self.frames.append(frame)
        self._pushed += frame.duration

    def flush(self) -> None:
        super().flush()
        pushed, self._pushed = self._pushed, 0.0
        self.on_playback_finished(playback_position=pushed, interrupted=False)

    def clear_buffer(self) -> None:
        pass


class Repeater(Agent):
    """Says back what it heard, through the session's TTS (no LLM in the loop)."""

    def __init__(self) -> None:
        super().__init__(instructions="repeat the caller")

    async def on_user_turn_completed(self, turn_ctx: llm.ChatContext,
                                     new_message: llm.ChatMessage) -> None:
        self.session.say(f"You said: {new_message.text_content}")


async def _until(predicate: Callable[[], object], limit_s: float) -> None:
    """Poll ``predicate`` (the session's events come from its own tasks) up to ``limit_s``."""
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_plugins_in_an_agent_session(plugins: tuple[STT, TTS, VAD],
                                           tmp_path: Path) -> None:
    stt, tts, detector = plugins
    pcm, text = load_prompt(PROMPT)
    session: AgentSession[None] = AgentSession(stt=stt, tts=tts, vad=detector)
    heard: list[str] = []
    said: list[str] = []

    @session.on("user_input_transcribed")
    def _heard(ev: UserInputTranscribedEvent) -> None:
        if ev.is_final:
            heard.append(ev.transcript)

    @session.on("conversation_item_added")
    def _said(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage) and ev.item.role == "assistant":
            said.append(ev.item.text_content or "")

    speaker = Speaker()
    session.input.audio = WavInput(pcm)
    session.output.audio = speaker
    await session.start(Repeater(), record=False)
    try:
        await _until(lambda: said and speaker.frames, 60)
    finally:
        await session.aclose()
    assert heard and word_error_rate(text, heard[0]) <= 0.2, heard
    assert said[0].startswith("You said: ") and word_error_rate(text, said[0][10:]) <= 0.2
    # the reply was spoken by piper: audio at the voice's rate, as long as the sentence
    assert all(f.sample_rate == tts.sample_rate for f in speaker.frames)
    assert sum(f.duration for f in speaker.frames) > 2.0
