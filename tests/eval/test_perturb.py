"""Caller audio variations: the noise is at the SNR asked for, the telephone band is
300-3400 Hz, speed changes the length, and a seed gives the same audio twice."""

from __future__ import annotations

import numpy as np
import pytest

from voice.perturb import active_power, add_noise, apply_variant, change_speed, telephone


def tone(freqs: list[float], seconds: float = 1.0, amp: float = 6000.0) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    x = sum(amp * np.sin(2 * np.pi * f * t) for f in freqs)
    return bytes(np.asarray(x, dtype="<i2").tobytes())


def power_at(pcm: bytes, freq: float) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / 16000)
    return float(spectrum[np.argmin(np.abs(freqs - freq))])


def test_noise_is_at_the_requested_snr_over_active_speech() -> None:
    # half a second of tone, half of silence: the SNR is against the tone, not the mean
    speech = tone([440.0], 0.5) + bytes(16000)
    noisy = add_noise(speech, 10.0, np.random.default_rng(1))
    clean = np.frombuffer(speech, "<i2").astype(np.float64)
    noise = np.frombuffer(noisy, "<i2").astype(np.float64) - clean
    snr = 10 * np.log10(active_power(clean) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.2)
    assert add_noise(speech, 10.0, np.random.default_rng(1)) == noisy  # reproducible
    assert add_noise(bytes(3200), 10.0, np.random.default_rng(1)) == bytes(3200)


def test_telephone_band_keeps_speech_frequencies_only() -> None:
    line = telephone(tone([150.0, 1000.0, 5000.0], amp=3000.0))
    assert len(line) == 32000
    kept = power_at(line, 1000.0)
    assert power_at(line, 150.0) < kept / 100
    assert power_at(line, 5000.0) < kept / 100


def test_speed_changes_duration() -> None:
    pcm = tone([300.0])
    assert len(change_speed(pcm, 1.25)) // 2 == pytest.approx(16000 / 1.25, abs=2)
    assert len(change_speed(pcm, 0.8)) // 2 == pytest.approx(16000 / 0.8, abs=2)
    assert change_speed(pcm, 1.0) == pcm
    with pytest.raises(ValueError, match="positive"):
        change_speed(pcm, 0)
    assert apply_variant(pcm, "clean", None, np.random.default_rng(0)) == pcm
    with pytest.raises(ValueError, match="unknown variant"):
        apply_variant(pcm, "reverb", None, np.random.default_rng(0))
