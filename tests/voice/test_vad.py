"""The VAD segmenter on real speech and on synthetic edge cases."""

from __future__ import annotations

import numpy as np

from gateway.evaluation.speech import load_prompt
from voice.audio import FRAME_BYTES
from voice.config import VadConfig
from voice.vad import Pause, Resume, Segmenter, SpeechStart, VadEvent, VadState


def run(segmenter: Segmenter, pcm: bytes) -> list[VadEvent]:
    events = []
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        event = segmenter.process(pcm[i : i + FRAME_BYTES])
        if event is not None:
            events.append(event)
    return events


def silence(ms: int) -> bytes:
    return b"\0" * (ms * 32)


class Scripted:
    """A fake classifier that answers from a list of verdicts."""

    def __init__(self, verdicts: list[bool]) -> None:
        self.verdicts = list(verdicts)

    def is_speech(self, frame: bytes) -> bool:
        return self.verdicts.pop(0) if self.verdicts else False

    def reset(self) -> None:
        pass


def test_real_speech_starts_pauses_and_keeps_the_audio() -> None:
    pcm, _ = load_prompt("conf-locked")
    seg = Segmenter(VadConfig())
    events = run(seg, silence(500) + pcm + silence(600))
    starts = [e for e in events if isinstance(e, SpeechStart)]
    assert len(starts) == 1
    assert 450 <= starts[0].onset_ms <= 1200
    assert starts[0].at_ms - starts[0].onset_ms <= VadConfig().start_window_ms
    assert isinstance(events[-1], Pause)
    assert seg.state is VadState.PAUSED
    assert seg.silence_ms >= 500
    # the utterance carries the preroll and everything after the onset
    assert len(seg.utterance()) >= len(pcm) - 32 * 600
    audio = seg.end_utterance()
    assert audio and seg.state.value == "silence" and seg.utterance() == b""


def test_a_click_does_not_start_speech() -> None:
    frame = np.full(320, 8000, "<i2").tobytes()
    seg = Segmenter(VadConfig(warmup_ms=0), Scripted([False] * 10 + [True] + [False] * 20))
    assert run(seg, frame * 31) == []


def test_start_needs_the_confirmation_window() -> None:
    config = VadConfig(start_ms=60, start_window_ms=100, warmup_ms=0)
    verdicts = [False] * 5 + [True, False, True, False, True] + [True] * 5
    events = run(Segmenter(config, Scripted(verdicts)), b"\1" * FRAME_BYTES * len(verdicts))
    assert events == [SpeechStart(at_ms=200, onset_ms=100)]


def test_warmup_frames_are_not_believed() -> None:
    config = VadConfig(warmup_ms=120, start_ms=60, start_window_ms=100)
    # the classifier says "speech" for the first 120 ms (its start-of-stream misfire)
    events = run(Segmenter(config, Scripted([True] * 6 + [False] * 10)), b"\1" * FRAME_BYTES * 16)
    assert events == []


def test_pause_then_resume_bumps_the_version() -> None:
    config = VadConfig(warmup_ms=0, pause_ms=100)
    verdicts = [True] * 10 + [False] * 6 + [True] * 5 + [False] * 2
    seg = Segmenter(config, Scripted(verdicts))
    events = run(seg, b"\1" * FRAME_BYTES * len(verdicts))
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStart, Pause, Resume]
    assert seg.version == 2
    assert seg.speech_ms >= 13 * 20


def test_silero_engine_segments_real_speech() -> None:
    pcm, _ = load_prompt("conf-locked")
    seg = Segmenter(VadConfig(engine="silero"))
    events = run(seg, silence(500) + pcm + silence(600))
    assert isinstance(events[0], SpeechStart)
    assert isinstance(events[-1], Pause)


def test_frames_below_the_energy_floor_are_never_speech() -> None:
    quiet = np.full(320, 40, "<i2").tobytes()  # about -58 dBFS: a faded word's tail
    loud = np.full(320, 4000, "<i2").tobytes()  # about -18 dBFS
    config = VadConfig(warmup_ms=0, energy_floor_db=-55.0)
    assert run(Segmenter(config, Scripted([True] * 10)), quiet * 10) == []
    events = run(Segmenter(config, Scripted([True] * 10)), loud * 10)
    assert isinstance(events[0], SpeechStart)


def test_the_floor_ends_real_speech_sooner() -> None:
    pcm, _ = load_prompt("conf-locked")
    audio = silence(300) + pcm + silence(800)
    ends = []
    for floor in (-90.0, -55.0):
        seg = Segmenter(VadConfig(energy_floor_db=floor))
        run(seg, audio)
        ends.append(seg.last_voiced_ms)
    assert ends[1] <= ends[0]
