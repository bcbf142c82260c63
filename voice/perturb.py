"""Variations of caller audio, to test that an agent hears the same thing in worse conditions.

All take and return PCM16 mono at 16 kHz (the pipeline's rate):

* ``add_noise(pcm, snr_db, rng)`` -- white Gaussian noise at a signal-to-noise ratio
  measured against the *active speech* level (the mean power of the 20 ms frames within
  40 dB of the loudest one, a simplification of ITU-T P.56), so the pauses in a turn do
  not make the noise quieter than the figure says;
* ``telephone(pcm)`` -- a narrowband phone line: 300-3400 Hz (ITU-T G.712's passband)
  and a G.711 mu-law round trip at 8 kHz;
* ``change_speed(pcm, factor)`` -- faster (> 1) or slower speech, pitch moving with it as
  on a tape (soxr resampling: a well-behaved filter, no artefacts of its own).

Randomness is injected (``numpy.random.Generator``), so a variant is reproducible.
"""

from __future__ import annotations

import numpy as np
import soxr

from voice.audio import SAMPLE_RATE, pcm_to_array, resample, ulaw_decode, ulaw_encode

FRAME = SAMPLE_RATE // 50  # 20 ms
ACTIVE_RANGE_DB = 40.0
BAND_HZ = (300.0, 3400.0)


def _to_pcm(samples: np.ndarray) -> bytes:
    clipped = np.clip(np.rint(samples), -32768, 32767)
    return bytes(clipped.astype("<i2").tobytes())


def active_power(samples: np.ndarray) -> float:
    """Mean power of the frames within ``ACTIVE_RANGE_DB`` of the loudest frame."""
    x = samples.astype(np.float64)
    n = x.size // FRAME
    if n == 0:
        return float(np.mean(x**2)) if x.size else 0.0
    power = np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1)
    loudest = float(power.max())
    if loudest <= 0.0:
        return 0.0
    active = power[power >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)]
    return float(active.mean())


def add_noise(pcm: bytes, snr_db: float, rng: np.random.Generator) -> bytes:
    x = pcm_to_array(pcm).astype(np.float64)
    signal = active_power(x)
    if signal == 0.0:
        return pcm
    sigma = np.sqrt(signal / 10 ** (snr_db / 10))
    return _to_pcm(x + rng.normal(0.0, sigma, x.size))


def telephone(pcm: bytes) -> bytes:
    x = pcm_to_array(pcm).astype(np.float64)
    if x.size == 0:
        return pcm
    # the whole turn at once: a brick-wall band-pass in the frequency domain is exact here
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    spectrum[(freqs < BAND_HZ[0]) | (freqs > BAND_HZ[1])] = 0
    band = _to_pcm(np.fft.irfft(spectrum, x.size))
    line = ulaw_decode(ulaw_encode(resample(band, SAMPLE_RATE, 8000)))
    return resample(line, 8000, SAMPLE_RATE)


def change_speed(pcm: bytes, factor: float) -> bytes:
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if factor == 1.0 or not pcm:
        return pcm
    # read the samples as if recorded at factor x the rate, then bring them back to 16 kHz
    out = soxr.resample(pcm_to_array(pcm), SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ")
    return bytes(np.asarray(out, dtype="<i2").tobytes())


def apply_variant(pcm: bytes, kind: str, value: float | None, rng: np.random.Generator) -> bytes:
    """One named variation (``clean``, ``noise``, ``telephone``, ``speed``)."""
    if kind == "clean":
        return pcm
    if kind == "noise" and value is not None:
        return add_noise(pcm, value, rng)
    if kind == "telephone":
        return telephone(pcm)
    if kind == "speed" and value is not None:
        return change_speed(pcm, value)
    raise ValueError(f"unknown variant {kind!r} ({value})")
