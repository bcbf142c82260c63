"""Labelled NLU sets as a caller's recogniser hears them: each utterance spoken by a
synthetic voice, sent through the telephone band as a Twilio call carries it (8 kHz
mu-law) and transcribed by whisper tiny.en with the agents' ``stt_prompt``, as in a call.

    python -m benchmarks.nlu_speech heldout   # tests/agents/data/heldout/heldout_whisper.tsv
    python -m benchmarks.nlu_speech dev       # tests/agents/data/dev_whisper.tsv
    python -m benchmarks.nlu_speech dev2      # tests/agents/data/dev2_whisper.tsv
    python -m benchmarks.nlu_speech heldout2  # tests/agents/data/heldout2/heldout2_whisper.tsv
    python -m benchmarks.nlu_speech dev2 --stt base  # ...dev2_whisper_base.tsv: whisper base
    python -m benchmarks.nlu_speech dev3 --stt moonshine-base  # dev3 as Moonshine hears it
    python -m benchmarks.nlu_speech screen    # word error rate of candidate espeak voices

The voices are chosen so that no set is heard by a voice the tuning heard: the tuning
set (intents_whisper.tsv) is piper joe; the development set, used to improve the NLU,
is piper joe at other speeds and espeak-ng accents of its own; the held-out set is
spoken only by voices neither of the others uses: flite's (Debian's ``flite``: slt,
rms, awb, kal16) and espeak-ng's en-us. Each utterance gets one voice, in turn, so every
voice speaks every kind of request. The output is committed, so tests need no synthesis
(regenerating needs ``apt-get install flite espeak-ng``).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestration.patterns.bulkhead import Bulkhead

DATA = Path(__file__).parents[1] / "tests" / "agents" / "data"


@dataclass(frozen=True, slots=True)
class Voice:
    """An espeak-ng voice (``voice+variant``) at a speed in words per minute, or piper
    joe (``engine == "piper"``) at a length scale."""

    engine: str
    name: str
    speed: float

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}@{self.speed:g}"


# chosen before the held-out set was ever measured, by ``screen``: word error rate on the
# tuning set's sentences at most 25 % (flite slt/rms/awb/kal16 17-19 %, espeak en-us at
# 140 wpm 23 %; the other espeak accents 30-45 %, piper joe's 0.9x/1.15x belong to dev)
HELD_OUT_VOICES = (
    Voice("flite", "slt", 1.0), Voice("flite", "rms", 1.0), Voice("flite", "awb", 1.0),
    Voice("flite", "kal16", 1.0), Voice("flite", "slt", 1.15), Voice("espeak", "en-us", 140),
)
# the development set's voices: none of the held-out ones, harder accents included
DEV_VOICES = (
    Voice("piper", "joe", 0.9), Voice("piper", "joe", 1.15), Voice("espeak", "en-gb", 140),
    Voice("espeak", "en-us-nyc", 140), Voice("espeak", "en-029", 140),
)
# the second development set's (dev2.tsv, written after dev.tsv had been fitted): accents
# neither of the other sets uses, and piper joe a little slower than the tuning heard him
DEV2_VOICES = (
    Voice("espeak", "en-gb-x-rp", 140), Voice("espeak", "en-gb-scotland", 140),
    Voice("espeak", "en-gb-x-gbclan", 140), Voice("piper", "joe", 0.95),
)
# the second held-out set's (heldout2/, written after the sentence features were chosen):
# speakers the tuning and development sets never heard, at speeds held-out 1 did not use
HELD_OUT2_VOICES = (
    Voice("flite", "slt", 0.9), Voice("flite", "rms", 1.1), Voice("flite", "awb", 0.9),
    Voice("flite", "kal", 1.0), Voice("espeak", "en-us+f3", 150),
)
# the third development set's (dev3.tsv, for Moonshine's mishearings): development voices
# only, the piper speeds and espeak accents dev and dev2 already use
DEV3_VOICES = (
    Voice("piper", "joe", 0.9), Voice("espeak", "en-gb", 140), Voice("piper", "joe", 1.15),
    Voice("espeak", "en-gb-scotland", 140), Voice("espeak", "en-us-nyc", 140),
)
SETS = {
    "heldout": (DATA / "heldout" / "heldout.tsv", DATA / "heldout" / "heldout_whisper.tsv",
                HELD_OUT_VOICES),
    "dev": (DATA / "dev.tsv", DATA / "dev_whisper.tsv", DEV_VOICES),
    "dev2": (DATA / "dev2.tsv", DATA / "dev2_whisper.tsv", DEV2_VOICES),
    "dev3": (DATA / "dev3.tsv", DATA / "dev3_whisper.tsv", DEV3_VOICES),
    "heldout2": (DATA / "heldout2" / "heldout2.tsv", DATA / "heldout2" / "heldout2_whisper.tsv",
                 HELD_OUT2_VOICES),
}


def _wav(data: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


def espeak(text: str, voice: Voice) -> tuple[bytes, int]:
    """16-bit mono PCM and its rate from espeak-ng (its own WAV on stdout)."""
    out = subprocess.run(["espeak-ng", "-v", voice.name, "-s", f"{voice.speed:g}", "--stdout",
                          text], capture_output=True, check=True).stdout
    return _wav(out)


def flite(text: str, voice: Voice) -> tuple[bytes, int]:
    """PCM from flite (Debian's ``flite``); ``speed`` stretches durations (1 = as built)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        subprocess.run(["flite", "-voice", voice.name, "--setf",
                        f"duration_stretch={voice.speed:g}", "-t", text, "-o", str(out)],
                       capture_output=True, check=True)
        return _wav(out.read_bytes())


def telephone(pcm: bytes, rate: int) -> bytes:
    """What a Twilio call delivers: 8 kHz mu-law, back at whisper's 16 kHz."""
    from voice.audio import resample, ulaw_decode, ulaw_encode

    narrow = resample(pcm, rate, 8000)
    return resample(ulaw_decode(ulaw_encode(narrow)), 8000, 16000)


def speaker(voices: tuple[Voice, ...]) -> Callable[[str, Voice], tuple[bytes, int]]:
    from voice.config import TtsConfig
    from voice.tts import PiperTTS

    pipers: dict[float, PiperTTS] = {}

    def speak(text: str, voice: Voice) -> tuple[bytes, int]:
        if voice.engine == "espeak":
            return espeak(text, voice)
        if voice.engine == "flite":
            return flite(text, voice)
        if voice.speed not in pipers:
            pipers[voice.speed] = PiperTTS(TtsConfig(length_scale=voice.speed),
                                           Bulkhead("bench-tts", 1, 4))
            pipers[voice.speed].load()
        tts = pipers[voice.speed]
        return tts.synthesize_sync(text), tts.sample_rate

    return speak


def read_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()
            if line and not line.startswith("#")]


def make(name: str, model: str = "tiny.en") -> None:
    """Speak, band-limit and transcribe set ``name``; with a ``model`` other than the
    default recogniser the output is ``<set>_whisper_<model>.tsv`` beside the usual one,
    to see how much of the heard figure is the recogniser's."""
    from orchestration.agents.config import load
    from voice.config import SttConfig
    from voice.services import recogniser

    source, target, voices = SETS[name]
    if model != "tiny.en":
        target = target.with_name(f"{target.stem}_{model.replace('.', '')}.tsv")
    prompt = load()[0].stt_prompt
    speak = speaker(voices)
    with tempfile.TemporaryDirectory() as tmp:
        config = SttConfig.model_validate({"model": model})
        stt = recogniser(config, Path(tmp), Bulkhead("bench-stt", 1, 4))
        stt.load()
        option = "" if model == "tiny.en" else f" --stt {model}"
        lines = [f"# intent\tvoice\ttext\tslots: {source.name} spoken by the voice named, "
                 f"8 kHz mu-law, {model} (whisper with the agents' stt_prompt) "
                 f"(python -m benchmarks.nlu_speech {name}{option})"]
        for i, row in enumerate(read_rows(source)):
            voice = voices[i % len(voices)]
            pcm, rate = speak(row[2], voice)
            heard = asyncio.run(stt.transcribe(telephone(pcm, rate), prompt)).text
            heard = heard.strip().replace("\t", " ") or "(nothing)"
            slots = row[3] if len(row) > 3 else ""
            lines.append("\t".join([row[0], voice.label, heard, slots]).rstrip("\t"))
            if not name.startswith("heldout"):  # nobody tuning should read what was heard there
                print(f"{i + 1:4} {voice.label:32} {heard}", flush=True)
    target.write_text("\n".join(lines) + "\n")


SCREEN = (
    *(Voice("flite", v, 1.0) for v in ("slt", "rms", "awb", "kal16")),
    *(Voice("espeak", a, 140) for a in ("en-us", "en-gb", "en-gb-x-gbclan", "en-gb-scotland",
                                        "en-us-nyc", "en-029", "en-gb-x-gbcwmd",
                                        "en-gb-x-rp")),
)


def screen(every: int = 8) -> None:
    """Word error rate of candidate espeak voices on the *tuning* set's clean sentences
    (never the held-out ones), to leave out voices whisper cannot follow at all: a
    caller a person could not understand on the phone is not a fair test of the NLU."""
    from gateway.evaluation.checks import word_errors
    from orchestration.agents.config import load
    from voice.config import SttConfig
    from voice.stt import WhisperSTT

    texts = [r[2] for r in read_rows(DATA / "intents.tsv") if r[1] == "clean"][::every]
    prompt = load()[0].stt_prompt
    with tempfile.TemporaryDirectory() as tmp:
        stt = WhisperSTT(SttConfig(model="tiny.en"), Path(tmp), Bulkhead("bench-stt", 1, 4))
        stt.load()
        for voice in SCREEN:
            errors = words = 0
            for text in texts:
                pcm, rate = speaker(SCREEN)(text, voice)
                heard = asyncio.run(stt.transcribe(telephone(pcm, rate), prompt)).text
                e, n = word_errors(text, heard)
                errors, words = errors + e, words + n
            print(f"{voice.label:36} WER {errors / words:6.1%} ({len(texts)} sentences)",
                  flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["screen"]:
        screen()
    else:
        args = sys.argv[1:]
        stt_model = args[args.index("--stt") + 1] if "--stt" in args else "tiny.en"
        make(args[0] if args and args[0] != "--stt" else "dev", stt_model)
