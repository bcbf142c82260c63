"""The phone line's noise gate (voice/line_in.py): a silent line costs little, and the
session hears what it would have heard without the gate."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.evaluation.speech import load_prompt
from voice.audio import (
    _ULAW_DECODE,
    FRAME_BYTES,
    FrameAssembler,
    StreamResampler,
    resample,
    ulaw_codes_under,
    ulaw_decode,
    ulaw_encode,
)
from voice.config import VadConfig
from voice.line_in import LINE_FRAME_BYTES, LineIn
from voice.vad import Segmenter, VadEvent, VadState

FLOOR_DB = VadConfig().energy_floor_db


class Sink:
    """A session's listening half: the real segmenter, and every frame it was fed."""

    def __init__(self) -> None:
        self.seg = Segmenter(VadConfig())
        self.frames: list[bytes] = []
        self.events: list[tuple[int, VadEvent]] = []

    def feed(self, frame: bytes, quiet: bool = False) -> None:
        self.frames.append(frame)
        event = self.seg.process(frame, quiet)
        if event is not None:
            self.events.append((len(self.frames), event))
        if self.seg.state is VadState.PAUSED and self.seg.silence_ms >= 600:
            self.seg.end_utterance()  # the turn ends, as the listener would end it

    def silent(self) -> bool:
        return self.seg.state is VadState.SILENCE


def line(pcm16k: bytes) -> list[bytes]:
    """Caller audio as a Twilio stream carries it: 20 ms mu-law messages at 8 kHz."""
    ulaw = ulaw_encode(resample(pcm16k, 16000, 8000))
    ulaw = ulaw[: len(ulaw) - len(ulaw) % LINE_FRAME_BYTES]
    return [ulaw[i : i + LINE_FRAME_BYTES] for i in range(0, len(ulaw), LINE_FRAME_BYTES)]


def noise(ms: int, dbfs: float, seed: int = 1) -> bytes:
    rms = 32768 * 10 ** (dbfs / 20)
    samples = np.random.default_rng(seed).normal(0, rms, ms * 16)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def play(messages: list[bytes]) -> tuple[Sink, LineIn]:
    sink = Sink()
    line_in = LineIn(sink, FLOOR_DB, sink.silent)
    for payload in messages:
        line_in.push(payload)
    return sink, line_in


def ungated(messages: list[bytes]) -> Sink:
    """Every message the full way: decode, resample, re-cut, classify (the resampler
    given a frame of silence first, as the line does)."""
    sink = Sink()
    resampler, frames = StreamResampler(8000, 16000), FrameAssembler(FRAME_BYTES)
    resampler.process(bytes(2 * LINE_FRAME_BYTES))
    for payload in messages:
        for frame in frames.push(resampler.process(ulaw_decode(payload))):
            sink.feed(frame)
    return sink


def test_the_gate_takes_exactly_the_codes_under_its_level() -> None:
    limit = 10 ** (FLOOR_DB / 20)
    codes = ulaw_codes_under(limit)
    for code in range(256):
        assert (code in codes) == (abs(int(_ULAW_DECODE[code])) / 32768 < limit)
    assert 0xFF in codes and 0x7F in codes  # digital silence
    assert 0x00 not in codes and 0x80 not in codes  # full scale


def test_on_a_digitally_silent_line_the_session_hears_the_same_frames() -> None:
    speech, _ = load_prompt("conf-getpin")
    quiet = [b"\xff" * LINE_FRAME_BYTES]  # G.711's code for 0
    messages = quiet * 50 + line(speech) + quiet * 75 + line(speech) + quiet * 40
    gated, line_in = play(messages)
    plain = ungated(messages)
    # the silence around and between the turns went through the gate ...
    assert line_in.gated_frames >= (1000 + 1500) // 20 - 40
    # ... and the session got the same audio, but for sounds under the gate (the
    # prompt's own faint lead-in became zeros; the resampler's state moves the rest by
    # a sample value or two) and made the same calls on it
    assert len(gated.frames) == len(plain.frames)
    difference = np.frombuffer(b"".join(gated.frames), "<i2").astype(int) - np.frombuffer(
        b"".join(plain.frames), "<i2")
    assert 0 < np.abs(difference).max() <= 32768 * 10 ** ((FLOOR_DB - 1) / 20) + 2
    assert gated.events == plain.events
    assert sum(1 for _, e in gated.events if type(e).__name__ == "SpeechStart") == 2


@pytest.mark.parametrize("prompt", ["conf-getpin", "vm-review", "conf-hasjoin", "tt-monkeys"])
def test_hiss_under_the_floor_is_gated_and_the_same_speech_is_found(prompt: str) -> None:
    """Under the gate webrtcvad sees zeros where the line had hiss, which can move a
    speech start or a resumption by a frame or so; every utterance is still found."""
    speech, _ = load_prompt(prompt)
    messages = line(noise(1000, FLOOR_DB - 17) + speech + noise(1500, FLOOR_DB - 17, seed=2)
                    + speech + noise(800, FLOOR_DB - 17, seed=3))
    gated, line_in = play(messages)
    plain = ungated(messages)
    assert line_in.gated_frames >= 60
    assert len(gated.frames) == len(plain.frames)

    def starts(sink: Sink) -> list[int]:
        return [n for n, e in sink.events if type(e).__name__ == "SpeechStart"]

    assert len(starts(gated)) == len(starts(plain)) == 2
    assert all(abs(a - b) <= 2 for a, b in zip(starts(gated), starts(plain), strict=True))


def test_a_line_noisier_than_the_floor_takes_the_full_path() -> None:
    sink, line_in = play(line(noise(2000, FLOOR_DB + 6)))
    assert line_in.gated_frames == 0
    assert len(sink.frames) == 100


def test_nothing_is_gated_inside_an_utterance() -> None:
    speech, _ = load_prompt("conf-getpin")
    pause = bytes(32 * 300)  # a pause inside the turn: digital silence, yet not gated
    sink = Sink()
    fed_quiet: list[bool] = []

    def feed(frame: bytes, quiet: bool = False) -> None:
        fed_quiet.append(quiet and not sink.silent())
        sink.feed(frame, quiet)

    sink_feed = type("S", (), {"feed": staticmethod(feed)})()
    line_in = LineIn(sink_feed, FLOOR_DB, sink.silent)
    for payload in line(bytes(32 * 400) + speech + pause + speech + bytes(32 * 400)):
        line_in.push(payload)
    assert line_in.gated_frames > 0
    assert not any(fed_quiet)


@pytest.mark.parametrize("size", [80, 240])
def test_messages_off_the_frame_grid_are_never_gated(size: int) -> None:
    sink = Sink()
    line_in = LineIn(sink, FLOOR_DB, sink.silent)
    for _ in range(50):
        line_in.push(b"\xff" * size)
    assert line_in.gated_frames == 0
    assert len(sink.frames) == 50 * size // LINE_FRAME_BYTES
    assert all(len(f) == FRAME_BYTES for f in sink.frames)


def test_a_line_that_opens_loud_is_gated_once_it_goes_quiet() -> None:
    speech, _ = load_prompt("conf-getpin")
    messages = line(speech) + [b"\xff" * LINE_FRAME_BYTES] * 100
    sink, line_in = play(messages)
    assert len(sink.frames) == len(messages)  # one frame per message, none held back
    assert line_in.gated_frames >= 100 - 600 // 20 - 5  # once the turn has ended
