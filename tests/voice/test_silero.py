"""Silero VAD on real speech and on silence and noise, 20 ms frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.evaluation.speech import load_prompt
from voice.audio import FRAME_BYTES, SAMPLE_RATE, chunks
from voice.errors import VoiceError
from voice.silero import SileroClassifier, SileroError


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes())


def _frames(pcm: bytes) -> list[bytes]:
    return [f for f in chunks(pcm, FRAME_BYTES) if len(f) == FRAME_BYTES]


HALF_SECOND_SILENCE = bytes(SAMPLE_RATE)  # 0.5 s of PCM16 zeros


def test_speech_frames_score_high_and_the_silence_around_them_low() -> None:
    speech, _ = load_prompt("conf-placeintoconf")
    frames = _frames(HALF_SECOND_SILENCE + speech + HALF_SECOND_SILENCE)
    classifier = SileroClassifier()
    probs = [classifier.speech_prob(f) for f in frames]

    lead = len(_frames(HALF_SECOND_SILENCE))
    body = probs[lead + 5 : lead + len(_frames(speech)) - 10]  # skip on/offset ramps
    assert max(probs[:lead]) < 0.1
    assert float(np.median(body)) > 0.85
    assert sum(p >= 0.5 for p in body) / len(body) > 0.9
    # the model follows the end of speech back down within the trailing half second
    assert max(probs[-10:]) < 0.2


@pytest.mark.parametrize(
    "noise",
    [
        pytest.param(np.zeros(SAMPLE_RATE), id="digital-silence"),
        pytest.param(np.random.default_rng(1).normal(0, 0.003, SAMPLE_RATE), id="noise-50dB"),
        pytest.param(np.random.default_rng(2).normal(0, 0.03, SAMPLE_RATE), id="noise-30dB"),
        pytest.param(0.1 * np.sin(2 * np.pi * 60 * np.arange(SAMPLE_RATE) / SAMPLE_RATE), id="hum"),
    ],
)
def test_silence_and_steady_noise_score_low(noise: np.ndarray) -> None:
    classifier = SileroClassifier()
    assert not any(classifier.is_speech(f) for f in _frames(_pcm(noise)))
    assert max(classifier.speech_prob(f) for f in _frames(_pcm(noise))) < 0.2


def test_each_classifier_keeps_its_own_stream_state() -> None:
    speech, _ = load_prompt("conf-full")
    frames = _frames(speech)
    alone = SileroClassifier()
    expected = [alone.speech_prob(f) for f in frames]

    # interleave a second stream of silence; the first stream must not notice
    first, second = SileroClassifier(), SileroClassifier()
    got = []
    for frame in frames:
        got.append(first.speech_prob(frame))
        second.speech_prob(bytes(FRAME_BYTES))
    assert got == expected

    first.reset()
    assert [first.speech_prob(f) for f in frames] == expected


def test_threshold_decides_is_speech() -> None:
    speech, _ = load_prompt("conf-full")
    frames = _frames(speech)[:40]
    eager, strict = SileroClassifier(threshold=0.05), SileroClassifier(threshold=0.99)
    assert sum(eager.is_speech(f) for f in frames) > sum(strict.is_speech(f) for f in frames)


def test_rejects_frames_of_the_wrong_size_and_bad_thresholds() -> None:
    classifier = SileroClassifier()
    with pytest.raises(SileroError, match="expected a 640-byte frame, got 320 bytes"):
        classifier.speech_prob(bytes(320))
    with pytest.raises(SileroError, match="threshold"):
        SileroClassifier(threshold=1.5)
    assert issubclass(SileroError, VoiceError)
