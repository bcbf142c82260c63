"""Real human speech for tests and benchmarks: the Asterisk core sound prompts.

The Debian package asterisk-core-sounds-en-wav installs studio recordings of one speaker
(8 kHz mono PCM16, telephone band) together with their transcripts. They are short, clean
sentences of the kind a voice agent hears, and they come from outside this project, so a
WER measured on them is honest.
"""

from __future__ import annotations

import functools
import gzip
import re
import wave
from pathlib import Path

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

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> list[str]:
    """0 <= n < 1e6 spelt out: 42 -> ["forty", "two"], 1300 -> ["one", "thousand", ...]."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return number_words(thousands) + ["thousand"] + (number_words(rest) if rest else [])
    raise ValueError(f"number out of range: {n}")


def normalize_words(text: str) -> list[str]:
    """Lowercase words without punctuation, numbers spelt out, "#" and "*" named."""
    text = text.lower().replace("#", " pound ").replace("*", " star ")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"[-/]", " ", text)  # call-forward -> call forward
    text = re.sub(r"[^\w\s]", "", text)  # that's -> thats, and drop . , ! ? ...
    words: list[str] = []
    for word in text.split():
        if word.isdigit() and len(word) <= 6:
            words.extend(number_words(int(word)))
        else:
            words.append(word)
    return words


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after normalization."""
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    # Levenshtein distance over words, one row at a time
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i]
        for j, hyp_word in enumerate(hyp, 1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (ref_word != hyp_word),
                )
            )
        previous = current
    return previous[-1] / len(ref)


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """WER over many utterances, weighted by reference length (the usual definition)."""
    errors = sum(word_error_rate(ref, hyp) * len(normalize_words(ref)) for ref, hyp in pairs)
    words = sum(len(normalize_words(ref)) for ref, _ in pairs)
    return errors / words if words else 0.0
