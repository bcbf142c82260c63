"""Speech to text with Moonshine base (English), shipped inside the ``moonshine-cpp`` wheel.

Whisper's encoder always pays for a 30 s window (~250-410 ms per utterance on two cores,
however short); Moonshine's encoder pays for the audio's real length, so a one-second
answer costs tens of milliseconds (docs/voice-models.md has the comparison on the same
speech). The wheel's models are ONNX Runtime format files with int8 weights dequantised
inside the graph; ``voice.ort_format`` writes them back as ONNX once, into the data
folder, so ONNX Runtime folds the weights when it loads them.

Decoding is greedy, one token at a time with the merged decoder's key/value cache, at
most ~6.5 tokens per second of audio plus a few (fast speech is ~4 words a second), so
noise cannot make it decode for long. Moonshine has no prompt and no no-speech token: the
probability that it ends the text at once, before any word, stands in for whisper's
``no_speech_prob``, and the mean log-probability of its tokens for ``avg_logprob``, so
``voice.stt.is_non_speech`` judges both recognisers' output the same way. A short turn it
is unsure of ("Goodbye." heard as "To buy.") is heard again by whisper tiny.en with the
agents' prompt (``stt.fallback_below_logprob``), and so is any other turn of at most 1 s
while the recogniser has spare time (``stt.crosscheck_short``): Moonshine can be sure of a
wrong short turn ("The bay." for "Goodbye."), and the transcript with the higher mean
log-probability wins. A turn of any length whose words Moonshine's own evidence dismisses
as non-speech, though it wrote several (``stt.fallback_dismissed_words``), is heard by
whisper too: it is an accent Moonshine cannot follow more often than a cough.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from voice.audio import AudioFormatError, ms_of, pcm_to_array
from voice.config import SttConfig
from voice.ort_format import OrtFormatError, ort_to_onnx
from voice.ports import WorkerPool
from voice.stt import SttError, Transcript, WhisperSTT, is_non_speech, transcript_of
from voice.stt_batch import Decoded
from voice.stt_jobs import SttJobs, Ticket

log = logging.getLogger(__name__)

PACKAGE = "moonshine_cpp"
MODEL = "base-en"
START, END = 1, 2  # <s>, </s>
TOKENS_PER_S = 6.5
LAYERS, HEADS, HEAD_DIM = 8, 8, 52  # Moonshine base's decoder
_SPACE = "\u2581"  # sentencepiece's word boundary
# what whisper is told to expect on a short turn besides the agent's words: the answers
# and the goodbye every call has (without them whisper's score for "Goodbye." rarely beats
# Moonshine's for its "The bay.")
CALL_WORDS = "Yes. No. Thank you. Goodbye."
_ANSWER_CHARS = re.compile(r"[^a-z0-9']+")
_CLAUSE_MARKS = re.compile(r"[.,!?;:]+")
# what loading or running a session raises (ONNX Runtime's own errors are not OSError or
# RuntimeError)
_ORT_ERRORS: tuple[type[Exception], ...] = (
    OSError, RuntimeError, ValueError,
    *(getattr(ort_state, name) for name in ("Fail", "InvalidArgument", "InvalidProtobuf",
                                            "NoSuchFile", "RuntimeException",
                                            "InvalidGraph")))


def read_tokenizer(path: Path) -> list[bytes]:
    """moonshine.cpp's ``tokenizer.bin``: each token's bytes, preceded by their length
    (one byte; a length of 128 or more takes a second byte for its high bits)."""
    data = path.read_bytes()
    tokens: list[bytes] = []
    i = 0
    while i < len(data):
        size = data[i]
        i += 1
        if size >= 128:
            size = (size & 0x7F) | (data[i] << 7)
            i += 1
        tokens.append(data[i:i + size])
        i += size
    return tokens


def prepare_model(data_dir: Path) -> Path:
    """The wheel's model as ONNX in ``data_dir/models/moonshine-base-en`` (converted once)."""
    target = data_dir / "models" / f"moonshine-{MODEL}"
    try:
        shipped = Path(str(resources.files(PACKAGE))) / "models" / MODEL
    except ModuleNotFoundError as exc:
        raise SttError("the moonshine-cpp wheel is not installed") from exc
    for part in ("encoder_model", "decoder_model_merged"):
        onnx_file = target / f"{part}.onnx"
        if not onnx_file.is_file():
            log.info("converting moonshine %s into %s", part, target)
            try:
                ort_to_onnx(shipped / f"{part}.ort", onnx_file)
            except (OSError, OrtFormatError) as exc:
                raise SttError(f"cannot prepare moonshine from {shipped}: {exc}") from exc
    tokenizer = target / "tokenizer.bin"
    if not tokenizer.is_file():
        tokenizer.write_bytes((shipped / "tokenizer.bin").read_bytes())
    return target


class MoonshineModel:
    """The encoder and decoder sessions and the tokenizer; ``decode`` is thread-safe.
    ``suffix`` ".ort" loads the wheel's own files (the tests compare the two)."""

    def __init__(self, path: Path, threads: int, suffix: str = ".onnx") -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: two cores are shared by every call
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.encoder = ort.InferenceSession(str(path / f"encoder_model{suffix}"), options,
                                                providers=["CPUExecutionProvider"])
            self.decoder = ort.InferenceSession(str(path / f"decoder_model_merged{suffix}"),
                                                options, providers=["CPUExecutionProvider"])
            self.tokens = read_tokenizer(path / "tokenizer.bin")
        except _ORT_ERRORS as exc:
            raise SttError(f"cannot load moonshine from {path}: {exc}") from exc
        self.past = [i.name for i in self.decoder.get_inputs()
                     if i.name.startswith("past_key_values.")]
        self.present = [o.name for o in self.decoder.get_outputs()][1:]

    def decode(self, audio: np.ndarray) -> Decoded:
        """Greedy decoding of one utterance (float32 mono 16 kHz in [-1, 1]). The end of
        the text is never the first token (it dropped "Read me my notes." whole): its
        probability is kept as the no-speech evidence instead, as whisper's is."""
        hidden = self.encoder.run(None, {"input_values": audio[None, :]})[0]
        cache = {name: np.zeros((1, HEADS, 0, HEAD_DIM), np.float32) for name in self.past}
        limit = math.ceil(audio.size / 16000 * TOKENS_PER_S) + 4
        token, out, logprobs, p_end_first = START, [], [], 0.0
        for step in range(limit):
            feeds = {"input_ids": np.array([[token]], np.int64),
                     "encoder_hidden_states": hidden,
                     "use_cache_branch": np.array([step > 0]), **cache}
            results = self.decoder.run(None, feeds)
            logits = results[0][0, -1].astype(np.float64)
            chosen = logits
            if step == 0:  # never the end first
                chosen = logits.copy()
                chosen[END] = -np.inf
            token = int(np.argmax(chosen))
            total = np.logaddexp.reduce(logits)
            logprob = float(logits[token] - total)
            if step == 0:
                p_end_first = math.exp(float(logits[END] - total))
            self._keep(cache, results[1:], first=step == 0)
            if token == END:
                break
            out.append(token)
            logprobs.append(logprob)
        return Decoded(self.detokenize(out), p_end_first,
                       sum(logprobs) / len(logprobs) if logprobs else -math.inf)

    def detokenize(self, ids: list[int]) -> str:
        """The text of token ids; the output layer is wider than the vocabulary (32768
        against 32000), and an id past it is no text."""
        pieces = (self.tokens[t] if 0 <= t < len(self.tokens) else b"" for t in ids)
        return b"".join(pieces).decode("utf-8", "replace").replace(_SPACE, " ").strip()

    def _keep(self, cache: dict[str, np.ndarray], present: list[np.ndarray],
              first: bool) -> None:
        for name, value in zip(self.present, present, strict=True):
            past = name.replace("present.", "past_key_values.", 1)
            # the cross-attention cache is computed on the first step only
            if first or ".decoder." in past:
                cache[past] = value


def _answer_key(text: str) -> str:
    """A short answer without its case, punctuation, spaces and hyphens."""
    return _ANSWER_CHARS.sub("", text.lower())


class BusyMeter:
    """The share of the last ``window_s`` seconds the recogniser spent working (0-1):
    a queue that is empty at one instant says little when jobs arrive several a second."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._spans: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, start: float, end: float) -> None:
        with self._lock:
            self._spans.append((start, end))

    def fraction(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        since = now - self.window_s
        with self._lock:
            while self._spans and self._spans[0][1] <= since:
                self._spans.popleft()
            busy = sum(min(end, now) - max(start, since) for start, end in self._spans)
        return max(0.0, busy) / self.window_s


_models: dict[int, MoonshineModel] = {}
_models_lock = threading.Lock()


class MoonshineSTT:
    """Transcribes finished utterances (PCM16 LE mono 16 kHz) with Moonshine base."""

    def __init__(self, config: SttConfig, data_dir: Path, pool: WorkerPool) -> None:
        self.config = config
        self.data_dir = data_dir
        self.pool = pool
        self._model: MoonshineModel | None = None
        self._lock = threading.Lock()
        self.jobs = SttJobs[Transcript](self.transcribe_batch_sync, pool, config.max_batch)
        # whisper tiny.en for the short turns Moonshine is unsure of (its own pool is ours:
        # it runs inside our job, never queued twice)
        second = (config.fallback_below_logprob is not None or config.crosscheck_short
                  or config.fallback_dismissed_words > 0)
        self.fallback = (WhisperSTT(config.model_copy(update={"model": "tiny.en"}), data_dir,
                                    pool) if second else None)
        self.fallbacks = 0  # turns heard again by whisper
        self.overruled = 0  # ... whose whisper transcript replaced Moonshine's
        self.busy = BusyMeter()
        self._answers = frozenset(_answer_key(a) for a in config.crosscheck_trusted)

    def load(self) -> None:
        """Convert (once) and load the shared model; cheap when loaded."""
        with self._lock:
            if self._model is None:
                with _models_lock:
                    model = _models.get(self.config.cpu_threads)
                    if model is None:
                        model = MoonshineModel(prepare_model(self.data_dir),
                                               self.config.cpu_threads)
                        _models[self.config.cpu_threads] = model
                self._model = model
        if self.fallback is not None:
            self.fallback.load()

    def warmup(self) -> None:
        self.transcribe_sync(bytes(2 * 8000))
        if self.fallback is not None:
            self.fallback.warmup()

    async def transcribe(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        """A final transcript (``prompt`` is accepted and ignored: Moonshine has none)."""
        return await self.jobs.transcribe(pcm, prompt)

    async def speculate(self, pcm: bytes, prompt: str | None, ticket: Ticket) -> Transcript:
        return await self.jobs.transcribe(pcm, prompt, ticket)

    def backlog(self) -> int:
        return self.jobs.backlog()

    def transcribe_batch_sync(self, jobs: Sequence[tuple[bytes, str | None]],
                              ) -> list[Transcript | Exception]:
        """One after another: Moonshine's cost follows each utterance's length, so a
        batch padded to the longest would only add work."""
        results: list[Transcript | Exception] = []
        for pcm, prompt in jobs:
            try:
                results.append(self.transcribe_sync(pcm, prompt))
            except SttError as exc:
                results.append(exc)
        return results

    def transcribe_sync(self, pcm: bytes, prompt: str | None = None) -> Transcript:
        try:
            samples = pcm_to_array(pcm)
        except AudioFormatError as exc:
            raise SttError(f"cannot transcribe: {exc}") from exc
        audio_ms = ms_of(pcm)
        if samples.size < 1600:  # under 0.1 s: shorter than the encoder's first window
            return Transcript("", audio_ms, 0.0, 1.0, -math.inf)
        self.load()
        assert self._model is not None
        started = time.monotonic()  # one clock for the busy meter and the latency
        try:
            heard, decoded = self._hear(samples, audio_ms, pcm, prompt)
        finally:
            ended = time.monotonic()
            self.busy.add(started, ended)
        latency_ms = (ended - started) * 1000.0
        if heard is not None:
            return Transcript(heard.text, audio_ms, latency_ms, heard.no_speech_prob,
                              heard.avg_logprob)
        return transcript_of([decoded] if decoded.text else [], audio_ms, latency_ms)

    def _hear(self, samples: np.ndarray, audio_ms: int, pcm: bytes, prompt: str | None,
              ) -> tuple[Transcript | None, Decoded]:
        """Moonshine's decoding, and whisper's transcript when it should replace it."""
        assert self._model is not None
        try:
            decoded = self._model.decode(samples.astype(np.float32) / 32768.0)
        except _ORT_ERRORS as exc:
            raise SttError(f"moonshine failed on {audio_ms} ms of audio: {exc}") from exc
        return self._second_opinion(decoded, audio_ms, pcm, prompt), decoded

    def _spare(self) -> bool:
        """Time for whisper's ~330 ms: no job waits and the recogniser was busy less than
        ``stt.crosscheck_max_busy`` of the last two seconds."""
        return (self.jobs.backlog() == 0
                and self.busy.fraction() < self.config.crosscheck_max_busy)

    def _trusted(self, text: str) -> bool:
        """One or more of the usual answers (``stt.crosscheck_trusted``), whatever their
        case, spaces and hyphens: "Good-bye.", "Bye-bye", "Yes, please.", "Okay, bye.";
        not "Yes, but" nor "The bay."."""
        if _answer_key(text) in self._answers:
            return True
        parts = [_answer_key(part) for part in _CLAUSE_MARKS.split(text)]
        return any(parts) and all(p in self._answers for p in parts if p)

    def _second_opinion(self, decoded: Decoded, audio_ms: int, pcm: bytes,
                        prompt: str | None) -> Transcript | None:
        """Whisper's transcript when it should replace Moonshine's: always for a short
        turn Moonshine doubts and for a sentence it dismissed as noise, else (a short turn
        cross-checked when there is spare time) when whisper is surer of its own."""
        config = self.config
        dismissed = bool(decoded.text) and is_non_speech(
            decoded.text, decoded.no_speech_prob, decoded.avg_logprob)
        wordy = 0 < config.fallback_dismissed_words <= len(decoded.text.split())
        if self.fallback is None or (dismissed and not wordy):
            return None  # Moonshine's own evidence says nothing was said (whisper, with a
            # prompt, writes "Okay." for a cough)
        floor = config.fallback_below_logprob
        unsure = dismissed or (audio_ms <= config.fallback_max_ms and (
            not decoded.text or (floor is not None and decoded.avg_logprob < floor)))
        check = (config.crosscheck_short and audio_ms <= config.crosscheck_max_ms
                 and not self._trusted(decoded.text) and self._spare())
        if not (unsure or check):
            return None
        self.fallbacks += 1
        # told the call's words only to check a turn Moonshine heard words in: on a turn it
        # doubts (a cough, noise) they make whisper write "No."
        if not unsure:
            prompt = f"{prompt} {CALL_WORDS}" if prompt else CALL_WORDS
        heard = self.fallback.transcribe_sync(pcm, prompt)
        if unsure or (heard.text and heard.avg_logprob > decoded.avg_logprob):
            self.overruled += 1
            return heard
        return None
