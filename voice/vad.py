"""Voice activity detection: per-frame classifiers and the segmenter that turns their
verdicts into speech starts, pauses and resumptions.

Time here is audio time (frames seen x 20 ms), not the wall clock, so the segmenter is
deterministic and testable without sleeping.
"""

from __future__ import annotations

import enum
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import webrtcvad

from voice.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, AudioFormatError, level
from voice.config import VadConfig


class FrameClassifier(Protocol):
    def is_speech(self, frame: bytes) -> bool: ...

    def reset(self) -> None: ...


class WebRtcClassifier:
    """Google's WebRTC VAD (GMM based); ~3 us per 20 ms frame."""

    def __init__(self, aggressiveness: int = 3) -> None:
        self.aggressiveness = aggressiveness
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))

    def reset(self) -> None:
        self._vad = webrtcvad.Vad(self.aggressiveness)


def make_classifier(config: VadConfig) -> FrameClassifier:
    if config.engine == "silero":
        from voice.silero import SileroClassifier

        return SileroClassifier(config.silero_threshold)
    return WebRtcClassifier(config.aggressiveness)


@dataclass(frozen=True, slots=True)
class SpeechStart:
    at_ms: int  # when the start was confirmed
    onset_ms: int  # the first voiced frame of the confirming run


@dataclass(frozen=True, slots=True)
class Pause:
    at_ms: int
    last_voiced_ms: int  # end of the last voiced frame


@dataclass(frozen=True, slots=True)
class Resume:
    at_ms: int


VadEvent = SpeechStart | Pause | Resume


class VadState(enum.Enum):
    SILENCE = "silence"
    SPEECH = "speech"
    PAUSED = "paused"


class Segmenter:
    """Frames in, speech events out; also keeps the current utterance's audio.

    Speech starts when ``start_ms`` of voiced frames fall within ``start_window_ms``; that
    confirmation hides clicks and the classifier's start-of-stream misfires. A run of
    ``pause_ms`` unvoiced frames is a pause; speech confirmed again is a resumption. The
    end of a turn is not decided here: the turn-taker needs the transcript for that.
    """

    def __init__(self, config: VadConfig, classifier: FrameClassifier | None = None) -> None:
        self.config = config
        self.classifier = classifier or make_classifier(config)
        self._window_frames = max(1, config.start_window_ms // FRAME_MS)
        self._start_frames = max(1, min(self._window_frames, config.start_ms // FRAME_MS))
        self._pause_frames = max(1, config.pause_ms // FRAME_MS)
        self._warmup_frames = config.warmup_ms // FRAME_MS
        self._preroll = max(self._window_frames, config.preroll_ms // FRAME_MS)
        self._floor = 10 ** (config.energy_floor_db / 20)  # dBFS -> the RMS ``level`` gives
        self._recent: deque[tuple[bytes, bool]] = deque(maxlen=self._preroll)
        self._utterance = bytearray()
        self.state = VadState.SILENCE
        self.frames = 0
        self.quiet_frames = 0  # of them, passed as quiet (a phone line's gate)
        self.version = 0  # bumps whenever the utterance grows past a pause
        self._unvoiced_run = 0
        self.onset_ms = 0
        self.last_voiced_ms = 0
        self.voiced_frames = 0

    @property
    def now_ms(self) -> int:
        return self.frames * FRAME_MS

    @property
    def silence_ms(self) -> int:
        """Time since the end of the last voiced frame of the current utterance."""
        if self.state is VadState.SILENCE:
            return 0
        return self.now_ms - self.last_voiced_ms

    @property
    def speech_ms(self) -> int:
        """Voiced time in the current utterance."""
        return self.voiced_frames * FRAME_MS

    @property
    def span_ms(self) -> int:
        """Onset to the last voiced frame."""
        return max(0, self.last_voiced_ms - self.onset_ms)

    def process(self, frame: bytes, quiet: bool = False) -> VadEvent | None:
        """One frame; ``quiet`` says the caller already knows it lies below the energy
        floor (``voice.line_in``), so it is unvoiced without asking the classifier."""
        if len(frame) != FRAME_BYTES:
            raise AudioFormatError(f"VAD frames are {FRAME_BYTES} bytes, got {len(frame)}")
        # webrtcvad calls the fading tail of a word "speech" well below anything audible on
        # a phone line; a floor ends speech where a listener hears it end
        voiced = not quiet and self.classifier.is_speech(frame) and level(frame) >= self._floor
        self.frames += 1
        self.quiet_frames += quiet
        if self.frames <= self._warmup_frames:
            voiced = False
        self._recent.append((frame, voiced))
        if self.state is VadState.SILENCE:
            return self._in_silence()
        self._utterance += frame
        if voiced:
            self._unvoiced_run = 0
        else:
            self._unvoiced_run += 1
        if self.state is VadState.SPEECH:
            if voiced:
                self.voiced_frames += 1
                self.last_voiced_ms = self.now_ms
                return None
            if self._unvoiced_run >= self._pause_frames:
                self.state = VadState.PAUSED
                return Pause(at_ms=self.now_ms, last_voiced_ms=self.last_voiced_ms)
            return None
        # PAUSED: only a confirmed run of speech resumes the utterance
        if self._confirmed():
            self.voiced_frames += sum(1 for _, v in self._window() if v)
            self.last_voiced_ms = self.now_ms
            self.state = VadState.SPEECH
            self.version += 1
            return Resume(at_ms=self.now_ms)
        return None

    def _window(self) -> list[tuple[bytes, bool]]:
        start = max(0, len(self._recent) - self._window_frames)
        return list(itertools.islice(self._recent, start, None))

    def _confirmed(self) -> bool:
        # checked on every frame outside speech: bail out on an unvoiced frame first
        if not self._recent or not self._recent[-1][1]:
            return False
        return sum(1 for _, v in self._window() if v) >= self._start_frames

    def _in_silence(self) -> VadEvent | None:
        if not self._confirmed():
            return None
        frames = list(self._recent)
        window = self._window()
        first_voiced = next(i for i, (_, v) in enumerate(window) if v)
        onset_frame = self.frames - len(window) + first_voiced
        self.onset_ms = onset_frame * FRAME_MS
        self.voiced_frames = sum(1 for _, v in window if v)
        self.last_voiced_ms = self.now_ms
        self._utterance = bytearray(b"".join(f for f, _ in frames))
        self._unvoiced_run = 0
        self.state = VadState.SPEECH
        self.version += 1
        return SpeechStart(at_ms=self.now_ms, onset_ms=self.onset_ms)

    def utterance(self) -> bytes:
        """The current utterance so far, preroll included."""
        return bytes(self._utterance)

    def end_utterance(self) -> bytes:
        """Close the current utterance and go back to silence; returns its audio."""
        audio = bytes(self._utterance)
        self._utterance = bytearray()
        self.state = VadState.SILENCE
        self._unvoiced_run = 0
        self.voiced_frames = 0
        self._recent.clear()
        return audio
