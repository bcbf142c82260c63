"""faster-whisper STT on real human speech, noise, and the joined base model."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmarks.phone_line import load_phone_lines
from gateway.evaluation.checks import word_errors
from gateway.evaluation.speech import SHORT_PROMPTS, corpus_wer, load_prompt, word_error_rate
from orchestration.patterns.bulkhead import Bulkhead, BulkheadFull
from voice import stt as stt_module
from voice.audio import SAMPLE_RATE
from voice.config import SttConfig
from voice.errors import VoiceError
from voice.stt import SttError, Transcript, WhisperSTT, is_non_speech, prepare_base_model

pytestmark = pytest.mark.slow


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes())


def test_word_error_rate_over_short_prompts_is_low(whisper_tiny: WhisperSTT) -> None:
    pairs = []
    for name in SHORT_PROMPTS[:15]:
        pcm, reference = load_prompt(name)
        transcript = whisper_tiny.transcribe_sync(pcm)
        assert transcript.audio_ms == len(pcm) * 1000 // (2 * SAMPLE_RATE)
        assert transcript.latency_ms > 0
        assert transcript.no_speech_prob < 0.5
        pairs.append((reference, transcript.text))
    assert corpus_wer(pairs) < 0.10, pairs


def _cough(rng: np.random.Generator, bursts: int) -> np.ndarray:
    # a cough: broadband bursts with a fast decay, low-passed a little
    out = np.zeros(SAMPLE_RATE)
    for k in range(bursts):
        burst = rng.normal(0, 1, SAMPLE_RATE // 4) * np.exp(-np.linspace(0, 8, SAMPLE_RATE // 4))
        burst = np.convolve(burst, np.ones(8) / 8, "same") * 0.5
        out[k * 6000 : k * 6000 + burst.size] += burst
    return out


def _clicks() -> np.ndarray:
    out = np.zeros(SAMPLE_RATE)
    out[:: SAMPLE_RATE // 4] = 0.8
    return out


NON_SPEECH = {
    "silence-1s": np.zeros(SAMPLE_RATE),
    "silence-300ms": np.zeros(SAMPLE_RATE * 3 // 10),
    "noise-60dB": np.random.default_rng(0).normal(0, 0.001, SAMPLE_RATE),
    "noise-30dB": np.random.default_rng(1).normal(0, 0.03, SAMPLE_RATE),
    "noise-loud": np.random.default_rng(2).normal(0, 0.2, SAMPLE_RATE),
    "cough": _cough(np.random.default_rng(3), 1),
    "double-cough": _cough(np.random.default_rng(4), 2),
    "clicks": _clicks(),
    "hum": 0.1 * np.sin(2 * np.pi * 60 * np.arange(SAMPLE_RATE) / SAMPLE_RATE),
}


def _agents_prompt() -> str:
    import yaml

    config = yaml.safe_load(Path("orchestration/agents/default.yaml").read_text())
    return str(config["stt_prompt"])


@pytest.mark.parametrize("prompted", [False, True], ids=["plain", "prompted"])
@pytest.mark.parametrize("name", NON_SPEECH)
def test_non_speech_gives_empty_text(whisper_tiny: WhisperSTT, name: str, prompted: bool) -> None:
    # a prompt must not make whisper "hear" its own phrases in noise
    prompt = _agents_prompt() if prompted else None
    transcript = whisper_tiny.transcribe_sync(_pcm(NON_SPEECH[name]), prompt)
    assert transcript.text == ""


def test_the_agents_prompt_over_a_phone_line(whisper_tiny: WhisperSTT) -> None:
    """Caller turns of the agents' domain over a telephone line: the agents' prompt makes
    fewer word errors than none, and costs nothing on human speech.

    The turns are committed audio (benchmarks/phone_line.py): of the 246 clean domain
    turns of ``benchmarks/stt_prompt.py`` (piper over an 8 kHz mu-law line, as said and
    15 % faster), the 18 on which the prompt changes the transcript's errors, for better
    or worse; on the others it changes nothing, so these carry its effect. Whisper decodes
    a given audio the same way on every run (5 runs of the 246: not one transcript
    changed), so unlike audio synthesized afresh (piper never says a text the same way
    twice) this compares the same thing every time: 25 errors without the prompt, 15 with
    it, out of 100 words (docs/voice-models.md). The margin leaves room for another CPU's
    kernels decoding a borderline turn differently."""
    prompt = _agents_prompt()
    lines = load_phone_lines()
    assert len(lines) == 18
    plain = [(line.text, whisper_tiny.transcribe_sync(line.pcm).text) for line in lines]
    prompted = [(line.text, whisper_tiny.transcribe_sync(line.pcm, prompt).text)
                for line in lines]
    saved = errors(plain) - errors(prompted)
    # measured: 17 words saved on 14 turns ("invoice", "failed", "cancel", "book",
    # "Goodbye"), 7 lost on 4 ("Maria Colley", "Lift my action items")
    assert saved >= 5, (saved, plain, prompted)
    human = []
    for name in SHORT_PROMPTS[:15]:
        pcm, reference = load_prompt(name)
        human.append((reference, whisper_tiny.transcribe_sync(pcm, prompt).text))
    assert corpus_wer(human) < 0.10, human


def errors(pairs: list[tuple[str, str]]) -> int:
    return sum(word_errors(reference, heard)[0] for reference, heard in pairs)


def test_empty_audio_is_empty_text_without_running_the_model(whisper_tiny: WhisperSTT) -> None:
    assert whisper_tiny.transcribe_sync(b"") == Transcript("", 0, 0.0, 1.0, float("-inf"))


def test_odd_byte_count_is_a_clear_error(whisper_tiny: WhisperSTT) -> None:
    with pytest.raises(SttError, match="even number of bytes"):
        whisper_tiny.transcribe_sync(b"\x00\x01\x02")
    assert issubclass(SttError, VoiceError)


def test_genuine_thank_you_is_kept(whisper_tiny: WhisperSTT) -> None:
    pcm, reference = load_prompt("auth-thankyou")
    assert word_error_rate(reference, whisper_tiny.transcribe_sync(pcm).text) == 0.0


@pytest.mark.parametrize(
    ("text", "no_speech_prob", "avg_logprob", "dropped"),
    [
        (" Thank you.", 0.08, -0.13, False),  # said by a person: strong speech evidence
        (" Thank you.", 0.72, -0.85, True),  # a cough, as tiny.en heard it
        (" Thanks for watching!", 0.45, -0.3, True),  # a famous hallucination, some evidence
        (" you", 0.96, -1.4, True),
        (" Agent logged in.", 0.11, -0.25, False),
        (" 15", 0.62, -0.40, False),  # noisy single word: confident decode wins
        (" Okay.", 0.73, -1.3, True),
        (" .", 0.2, -0.2, True),
        (" [Music]", 0.1, -0.2, True),
        (" (coughing)", 0.3, -0.6, True),
    ],
)
def test_non_speech_decision(
    text: str, no_speech_prob: float, avg_logprob: float, dropped: bool
) -> None:
    assert is_non_speech(text, no_speech_prob, avg_logprob) is dropped


async def test_async_transcription_goes_through_the_bulkhead(
    whisper_tiny: WhisperSTT,
) -> None:
    bulkhead = whisper_tiny.pool
    assert bulkhead.max_concurrent == 1
    pcm, reference = load_prompt("conf-full")
    gate = threading.Event()
    # a blocking job holds the only slot, so transcriptions must wait in the queue
    blocker = asyncio.create_task(bulkhead.run_in_thread(gate.wait))
    queued = asyncio.create_task(whisper_tiny.transcribe(pcm))
    fillers = [asyncio.create_task(whisper_tiny.transcribe(pcm)) for _ in range(3)]
    for _ in range(100):  # each task takes or queues for its slot within a few steps
        if bulkhead.queued == bulkhead.max_queue:
            break
        await asyncio.sleep(0)
    assert (bulkhead.active, bulkhead.queued) == (1, bulkhead.max_queue)
    rejected_before = bulkhead.rejected
    with pytest.raises(BulkheadFull, match="test-stt"):
        await whisper_tiny.transcribe(pcm)
    assert bulkhead.rejected == rejected_before + 1
    for filler in fillers:
        filler.cancel()

    gate.set()
    await blocker
    transcript = await queued
    assert word_error_rate(reference, transcript.text) == 0.0
    assert (bulkhead.active, bulkhead.queued) == (0, 0)


def test_base_model_is_joined_once_and_transcribes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    model_dir = prepare_base_model(data_dir)
    assert model_dir == data_dir / "models" / "whisper-base"
    parts = [stt_module._package_file(package, name) for package, name in stt_module._BASE_PARTS]
    model_bin = model_dir / "model.bin"
    assert model_bin.stat().st_size == sum(p.stat().st_size for p in parts)
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.json",
    ]

    # a complete directory is reused as is
    mtime = model_bin.stat().st_mtime_ns
    assert prepare_base_model(data_dir) == model_dir
    assert model_bin.stat().st_mtime_ns == mtime

    stt = WhisperSTT(SttConfig(model="base"), data_dir, Bulkhead("test-base", 1, 0))
    stt.load()
    pairs = []
    for name in ("cannot-complete-as-dialed", "conf-leaderhasleft", "vm-dialout"):
        pcm, reference = load_prompt(name)
        pairs.append((reference, stt.transcribe_sync(pcm).text))
    assert corpus_wer(pairs) < 0.10, pairs


def test_a_truncated_base_model_is_rebuilt(tmp_path: Path) -> None:
    model_dir = prepare_base_model(tmp_path)
    model_bin = model_dir / "model.bin"
    full_size = model_bin.stat().st_size
    with model_bin.open("r+b") as f:  # as if a copy without atomic rename had crashed
        f.truncate(full_size // 3)
    (model_dir / "config.json").unlink()

    prepare_base_model(tmp_path)
    assert model_bin.stat().st_size == full_size
    assert (model_dir / "config.json").is_file()
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_missing_model_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        stt_module, "_BASE_PARTS", (("voxgate_no_such_model_package", "model.bin.part1"),)
    )
    stt = WhisperSTT(SttConfig(model="base"), tmp_path, Bulkhead("test-missing", 1, 0))
    with pytest.raises(SttError, match="'voxgate_no_such_model_package' is not installed"):
        stt.load()
