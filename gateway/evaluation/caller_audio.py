"""The call client's caller audio: files read as PCM16 16 kHz, cut into 20 ms frames, the
frames that carry speech found, and each frame put in its protocol's wire format."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soxr
import webrtcvad

from gateway.evaluation.call_result import CallError
from voice.audio import (
    SAMPLE_RATE,
    SUPPORTED_RATES,
    FrameAssembler,
    level,
    resample,
    ulaw_encode,
)

Protocol = Literal["twilio", "browser"]

FRAME_BYTES_16K = 640
VAD_AGGRESSIVENESS = 3
VOICE_FLOOR = 0.0056  # RMS of about -45 dBFS: webrtcvad alone flags faint noise as speech


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


def wire_frames(pcm: bytes, protocol: Protocol) -> list[bytes]:
    """The segment as it goes on the wire: 640-byte PCM16 frames or 160-byte mu-law ones."""
    frames = _frames(pcm)
    if protocol == "browser":
        return frames
    ulaw = ulaw_encode(resample(b"".join(frames), SAMPLE_RATE, 8000))
    ulaw = ulaw.ljust(160 * len(frames), ulaw_encode(b"\0\0"))
    return [ulaw[i * 160 : (i + 1) * 160] for i in range(len(frames))]


