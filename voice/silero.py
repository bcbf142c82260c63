"""Silero VAD as a frame classifier, from the ONNX file faster-whisper ships (no torch).

This export (``faster_whisper/assets/silero_vad_v6.onnx``) is the 16 kHz model with the
sample-rate input folded away. Its inputs, as faster-whisper's ``vad.py`` feeds it:

* ``input``: float32 ``[batch, 576]`` = 512 new samples (32 ms) preceded by the last 64
  samples of the previous window (zeros at the start of a stream);
* ``h``, ``c``: the LSTM state, float32 ``[1, 1, 128]`` each, zeros at the start;

and it returns one speech probability per window plus the next ``h`` and ``c``.

Our frames are 20 ms (320 samples), so they are buffered into 512-sample windows: a frame
completes at most one window. ``speech_prob`` returns the probability of the newest
window, which lags the frame's end by at most 12 ms. The recurrent state and the context
belong to one audio stream, so each call (each ``SileroClassifier``) has its own; the
model weights, in one ``InferenceSession``, are shared by the whole process
(``InferenceSession.run`` is thread-safe).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import onnxruntime

from voice.audio import FRAME_BYTES, pcm_to_array
from voice.errors import VoiceError

WINDOW_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


class SileroError(VoiceError):
    """The Silero model is missing or a frame has the wrong size."""


def model_path() -> Path:
    # find_spec locates the package without importing it: faster-whisper pulls in
    # CTranslate2 and PyAV, which a process running only the VAD does not need
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise SileroError("Silero VAD model not found: faster-whisper is not installed")
    return Path(spec.origin).parent / "assets" / "silero_vad_v6.onnx"


_session: onnxruntime.InferenceSession | None = None
_session_lock = threading.Lock()


def _shared_session() -> onnxruntime.InferenceSession:
    global _session
    with _session_lock:
        if _session is None:
            path = model_path()
            if not path.is_file():
                raise SileroError(f"Silero VAD model not found at {path} (faster-whisper)")
            options = onnxruntime.SessionOptions()
            # one 32 ms window is a tiny graph: extra threads only add hand-off latency,
            # and every call in the process runs its own classifier
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            _session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        return _session


class SileroClassifier:
    """Speech/non-speech for 20 ms PCM16 16 kHz frames of one stream."""

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise SileroError(f"threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self._session = _shared_session()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: state, context and buffered samples."""
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._prob = 0.0

    def speech_prob(self, frame: bytes) -> float:
        """Probability of speech in the newest complete 32 ms window, after this frame."""
        if len(frame) != FRAME_BYTES:
            raise SileroError(f"expected a {FRAME_BYTES}-byte frame, got {len(frame)} bytes")
        samples = pcm_to_array(frame).astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        while self._pending.size >= WINDOW_SAMPLES:
            window = self._pending[:WINDOW_SAMPLES]
            self._pending = self._pending[WINDOW_SAMPLES:]
            self._prob = self._run(window)
        return self._prob

    def is_speech(self, frame: bytes) -> bool:
        return self.speech_prob(frame) >= self.threshold

    def _run(self, window: np.ndarray) -> float:
        batch = np.concatenate([self._context, window])[np.newaxis, :]
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = window[-CONTEXT_SAMPLES:]
        return float(np.asarray(probs).reshape(-1)[0])
