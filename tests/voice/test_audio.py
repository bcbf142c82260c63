"""G.711 mu-law against the reference implementation, resampling, framing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from voice.audio import (
    FRAME_BYTES,
    AudioFormatError,
    FrameAssembler,
    StreamResampler,
    level,
    resample,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the CPython reference G.711 coder (removed in 3.13)


def test_ulaw_encode_matches_the_reference_for_every_sample() -> None:
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)


def test_ulaw_decode_matches_the_reference_for_every_code() -> None:
    codes = bytes(range(256))
    assert ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)


def test_ulaw_known_values() -> None:
    # G.711 table 2a: 0xFF and 0x7F are the two zeros; 0x80 / 0x00 are full scale
    assert ulaw_decode(b"\xff\x7f") == b"\x00\x00\x00\x00"
    assert np.frombuffer(ulaw_decode(b"\x80\x00"), "<i2").tolist() == [32124, -32124]
    assert ulaw_encode(np.array([0, 32767, -32768], "<i2").tobytes()) == b"\xff\x80\x00"


def test_ulaw_rejects_odd_byte_counts() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        ulaw_encode(b"\x00\x01\x02")


def tone(rate: int, hz: float = 440.0, seconds: float = 1.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * math.pi * hz * t) * 12000).astype("<i2").tobytes()


@pytest.mark.parametrize("src", [8000, 16000, 22050, 24000, 48000])
@pytest.mark.parametrize("dst", [8000, 16000, 22050, 24000, 48000])
def test_resample_keeps_length_and_pitch(src: int, dst: int) -> None:
    out = np.frombuffer(resample(tone(src), src, dst), "<i2").astype(np.float64)
    assert abs(len(out) - dst) <= 2
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * dst / len(out)
    assert abs(peak_hz - 440.0) < 3.0


def test_resample_rejects_unsupported_rates() -> None:
    with pytest.raises(AudioFormatError, match="unsupported sample rate 44100"):
        resample(b"\0\0", 44100, 16000)


def test_stream_resampler_equals_whole_buffer_resampling() -> None:
    pcm = tone(8000, seconds=2.0)
    stream = StreamResampler(8000, 16000)
    pieces = [stream.process(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]
    streamed = np.frombuffer(b"".join(pieces) + stream.flush(), "<i2").astype(np.float64)
    whole = np.frombuffer(resample(pcm, 8000, 16000), "<i2").astype(np.float64)
    assert abs(len(streamed) - len(whole)) <= 4
    n = min(len(streamed), len(whole)) - 400
    assert np.sqrt(np.mean((streamed[200:n] - whole[200:n]) ** 2)) < 200  # ~-44 dB


def test_frame_assembler_recuts_any_chunking() -> None:
    assembler = FrameAssembler()
    data = bytes(range(256)) * 20
    frames = [f for i in range(0, len(data), 333) for f in assembler.push(data[i : i + 333])]
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert b"".join(frames) == data[: len(frames) * FRAME_BYTES]
    assert assembler.pending() == len(data) % FRAME_BYTES


def test_level() -> None:
    assert level(b"\0" * FRAME_BYTES) == 0.0
    loud = np.full(320, 16384, "<i2").tobytes()
    assert level(loud) == pytest.approx(0.5)


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (48000, 16000)])
def test_stream_resampler_holds_back_little_audio(src: int, dst: int) -> None:
    # every millisecond held inside the filter is added to barge-in and response latency
    stream = StreamResampler(src, dst)
    chunk = bytes(src // 50 * 2)
    produced = 0
    worst_ms = 0.0
    for i in range(1, 301):
        produced += len(stream.process(chunk)) // 2
        if i > 20:
            worst_ms = max(worst_ms, (i * (dst // 50) - produced) * 1000 / dst)
    assert worst_ms <= 16, worst_ms
