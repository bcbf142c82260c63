"""voxgate's offline models as ``livekit-agents`` plugins: drop them into an ``AgentSession``.

    from gateway.livekit.plugins import STT, TTS, VAD

    def prewarm(proc: JobProcess) -> None:          # once per job process
        proc.userdata["voxgate"] = (STT.load(), TTS.load(), VAD())

    stt, tts, vad = ctx.proc.userdata["voxgate"]
    session = AgentSession(stt=stt, tts=tts, vad=vad, llm=...)

* ``STT``: the recogniser ``SttConfig.model`` names (``voice/moonshine.py``,
  ``voice/stt.py``), batch recognition of one utterance. It does
  not stream, so ``AgentSession`` wraps it in its ``StreamAdapter`` with the VAD, which cuts
  the utterances (as voxgate's own session does).
* ``TTS``: piper (``voice/tts.py``), one sentence at a time (``AgentSession`` splits the
  reply into sentences for a TTS that does not stream), PCM16 at the voice's 22.05 kHz.
* ``VAD``: webrtcvad behind voxgate's segmenter (``voice/vad.py``): the same start
  confirmation, energy floor and pre-roll as a voxgate call; the end of speech is
  ``min_silence_ms`` of silence.

This module imports ``voice/`` and LiveKit only (a contract in pyproject.toml says so), so
it can be lifted into a plugin package of its own.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Never, TypeVar, TypeVarTuple

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, stt, tts, utils, vad
from livekit.agents.language import LanguageCode
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr

from voice.audio import (
    FRAME_MS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    AudioFormatError,
    FrameAssembler,
    StreamResampler,
    resample,
)
from voice.config import SttConfig, TtsConfig, VadConfig
from voice.errors import VoiceError
from voice.services import Recogniser, recogniser
from voice.tts import PiperTTS
from voice.vad import Pause, Segmenter, SpeechStart, VadState

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

PROVIDER = "voxgate"


class ThreadPool:
    """The ``WorkerPool`` a plugin runs its model on: the event loop's default threads.
    (voxgate's gateway plugs in bounded bulkheads instead; one LiveKit job process holds
    one call, so it needs no bound of its own.)"""

    async def run_in_thread(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        return await asyncio.to_thread(fn, *args)


def to_pcm16_mono(frame: rtc.AudioFrame, rate: int = SAMPLE_RATE) -> bytes:
    """One LiveKit frame as PCM16 mono at ``rate`` (channels averaged, soxr resampling)."""
    samples = np.frombuffer(bytes(frame.data), dtype="<i2")
    if frame.num_channels > 1:
        samples = samples.reshape(-1, frame.num_channels).mean(axis=1).astype("<i2")
    return resample(samples.tobytes(), frame.sample_rate, rate)


def pcm_frame(pcm: bytes, rate: int = SAMPLE_RATE) -> rtc.AudioFrame:
    return rtc.AudioFrame(data=pcm, sample_rate=rate, num_channels=1,
                          samples_per_channel=len(pcm) // 2)


# --- speech to text ------------------------------------------------------------------


class STT(stt.STT[Never]):
    """voxgate's recogniser from its shipped models (Moonshine base, whisper tiny.en or
    base: ``SttConfig.model``)."""

    def __init__(self, model: Recogniser) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._recogniser = model

    @classmethod
    def load(cls, config: SttConfig | None = None, data_dir: Path = Path(".voxgate"),
             ) -> STT:
        """Load and warm the model (blocking: call it in a prewarm function)."""
        made = recogniser(config or SttConfig(), data_dir, ThreadPool())
        made.load()
        made.warmup()
        return cls(made)

    @property
    def model(self) -> str:
        return self._recogniser.config.model

    @property
    def provider(self) -> str:
        return PROVIDER

    async def _recognize_impl(self, buffer: utils.AudioBuffer, *,
                              language: NotGivenOr[str] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        if utils.is_given(language) and not str(language).startswith("en"):
            raise APIError(f"voxgate's recognisers are English only, not {language!r}",
                           retryable=False)
        try:
            pcm = to_pcm16_mono(utils.merge_frames(buffer))
            transcript = await self._recogniser.transcribe(pcm)
        except (VoiceError, AudioFormatError) as exc:
            raise APIError(str(exc), retryable=False) from exc
        # the recogniser's mean token log-probability, as a probability
        confidence = math.exp(max(min(transcript.avg_logprob, 0.0), -50.0))
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=uuid.uuid4().hex[:12],
            alternatives=[stt.SpeechData(language=LanguageCode("en"), text=transcript.text,
                                         confidence=confidence)],
        )


# --- text to speech ------------------------------------------------------------------


class TTS(tts.TTS[Never]):
    """piper with voxgate's shipped voice, PCM16 mono at the voice's rate."""

    def __init__(self, piper: PiperTTS) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False),
                         sample_rate=piper.sample_rate, num_channels=1)
        self._piper = piper

    @classmethod
    def load(cls, config: TtsConfig | None = None) -> TTS:
        """Load and warm the voice (blocking: call it in a prewarm function)."""
        piper = PiperTTS(config or TtsConfig(), ThreadPool())
        piper.load()
        piper.warmup()
        return cls(piper)

    @property
    def model(self) -> str:
        return "piper"

    @property
    def provider(self) -> str:
        return PROVIDER

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
                   ) -> ChunkedStream:
        return ChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class ChunkedStream(tts.ChunkedStream):
    def __init__(self, *, tts: TTS, input_text: str, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._piper = tts._piper

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=uuid.uuid4().hex[:12],
                                  sample_rate=self._piper.sample_rate, num_channels=1,
                                  mime_type="audio/pcm")
        if not any(ch.isalnum() for ch in self.input_text):
            output_emitter.flush()  # punctuation alone: nothing to say, not an error
            return
        try:
            pcm = await self._piper.synthesize(self.input_text)
        except VoiceError as exc:
            raise APIError(str(exc), retryable=False) from exc
        output_emitter.push(pcm)
        output_emitter.flush()


# --- voice activity ------------------------------------------------------------------


class VAD(vad.VAD):
    """webrtcvad through voxgate's segmenter; ``min_silence_ms`` of silence ends speech."""

    def __init__(self, config: VadConfig | None = None, min_silence_ms: int = 550) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=FRAME_MS / 1000))
        if min_silence_ms < FRAME_MS:
            raise ValueError(f"min_silence_ms must be at least {FRAME_MS}, got {min_silence_ms}")
        self.config = config or VadConfig()
        self.min_silence_ms = min_silence_ms

    @property
    def model(self) -> str:
        return f"webrtcvad-{self.config.aggressiveness}"

    @property
    def provider(self) -> str:
        return PROVIDER

    def stream(self) -> VADStream:
        return VADStream(self)


class VADStream(vad.VADStream):
    def __init__(self, owner: VAD) -> None:
        self._config = owner.config
        self._min_silence_ms = owner.min_silence_ms
        self._segmenter = Segmenter(owner.config)
        super().__init__(owner)

    async def _main_task(self) -> None:
        resampler: StreamResampler | None = None
        frames = FrameAssembler()
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):  # a flush: a hard segment boundary
                self._segmenter = Segmenter(self._config)
                frames = FrameAssembler()
                continue
            if resampler is None or resampler.in_rate != item.sample_rate:
                resampler = StreamResampler(item.sample_rate, SAMPLE_RATE)
            mono = to_pcm16_mono(item, item.sample_rate)
            for frame in frames.push(resampler.process(mono)):
                self._process(frame)

    def _process(self, frame: bytes) -> None:
        seg = self._segmenter
        event = seg.process(frame)
        speaking = seg.state is VadState.SPEECH
        if isinstance(event, SpeechStart):
            self._send(vad.VADEventType.START_OF_SPEECH, seg.utterance(), speaking=True,
                       probability=1.0)
        self._send(vad.VADEventType.INFERENCE_DONE, frame,
                   speaking=seg.state is not VadState.SILENCE,
                   probability=1.0 if speaking else 0.0,
                   raw_accumulated_speech=seg.speech_ms / 1000 if speaking else 0.0,
                   raw_accumulated_silence=0.0 if speaking else seg.silence_ms / 1000)
        paused = isinstance(event, Pause) or seg.state is VadState.PAUSED
        if paused and seg.silence_ms >= self._min_silence_ms:
            # durations first: ending the utterance resets them
            speech_s, silence_s = seg.speech_ms / 1000, seg.silence_ms / 1000
            self._send(vad.VADEventType.END_OF_SPEECH, seg.end_utterance(), speaking=False,
                       speech_s=speech_s, silence_s=silence_s)

    def _send(self, kind: vad.VADEventType, pcm: bytes, *, speaking: bool,
              probability: float = 0.0, raw_accumulated_speech: float = 0.0,
              raw_accumulated_silence: float = 0.0, speech_s: float | None = None,
              silence_s: float | None = None) -> None:
        seg = self._segmenter
        self._event_ch.send_nowait(vad.VADEvent(
            type=kind, samples_index=seg.frames * SAMPLES_PER_FRAME,
            timestamp=seg.now_ms / 1000,
            speech_duration=seg.speech_ms / 1000 if speech_s is None else speech_s,
            silence_duration=seg.silence_ms / 1000 if silence_s is None else silence_s,
            frames=[pcm_frame(pcm)], speaking=speaking, probability=probability,
            raw_accumulated_speech=raw_accumulated_speech,
            raw_accumulated_silence=raw_accumulated_silence))


__all__ = ["STT", "TTS", "VAD", "ThreadPool", "pcm_frame", "to_pcm16_mono"]
