"""Real human speech for tests and benchmarks: the Asterisk core sound prompts.

The Debian package asterisk-core-sounds-en-wav installs studio recordings of one speaker
(8 kHz mono PCM16, telephone band) together with their transcripts. They are short, clean
sentences of the kind a voice agent hears, and they come from outside this project, so a
WER measured on them is honest.
"""

from __future__ import annotations

import functools
import gzip
import wave
from pathlib import Path

# the evaluation harness's word error rate, shared rather than copied
from gateway.evaluation.checks import normalize_words as normalize_words
from gateway.evaluation.checks import word_error_rate as word_error_rate
from gateway.evaluation.checks import word_errors
from voice.audio import SAMPLE_RATE, resample

SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

# Short prompts (about 1-4 s) with plain words; no tones, names or ellipses.
SHORT_PROMPTS: tuple[str, ...] = (
    "all-circuits-busy-now",
    "cannot-complete-as-dialed",
    "check-number-dial-again",
    "conf-full",
    "conf-locked",
    "conf-muted",
    "conf-extended",
    "conf-now-recording",
    "conf-placeintoconf",
    "conf-getpin",
    "conf-leaderhasleft",
    "pbx-parkingfailed",
    "queue-thankyou",
    "vm-deleted",
    "vm-changeto",
    "vm-dialout",
    "vm-enter-num-to-call",
    "agent-loginok",
    "agent-loggedoff",
    "auth-thankyou",
    "vm-delete",
    "conf-invalidpin",
)


class PromptNotFound(LookupError):
    """The named prompt has no WAV file or no transcript."""


@functools.cache
def _transcripts() -> dict[str, str]:
    texts: dict[str, str] = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            texts[name.strip()] = text.strip()
    return texts


@functools.cache
def load_prompt(name: str) -> tuple[bytes, str]:
    """(PCM16 LE mono 16 kHz audio, reference transcript) of one Asterisk prompt."""
    path = SOUNDS_DIR / f"{name}.wav"
    text = _transcripts().get(name)
    if not path.is_file() or text is None:
        raise PromptNotFound(f"no prompt {name!r} in {SOUNDS_DIR} / {TRANSCRIPTS}")
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise PromptNotFound(f"{path} is not mono PCM16")
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    return resample(pcm, rate, SAMPLE_RATE), text


# --- word error rate ----------------------------------------------------------------

def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """WER over many utterances, weighted by reference length (the usual definition)."""
    counts = [word_errors(ref, hyp) for ref, hyp in pairs]
    words = sum(n for _, n in counts)
    return sum(e for e, _ in counts) / words if words else 0.0
