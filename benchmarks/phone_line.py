"""The committed phone-line utterances (tests/voice/data/phone_line/): caller turns of the
agents' domain as they reach the gateway over a telephone line.

Each is piper (joe) speech of a clean utterance of tests/agents/data/intents.tsv, as said
or 15 % faster, through ``voice.perturb.telephone`` (300-3400 Hz, G.711 mu-law) and stored
as the 8 kHz mu-law bytes a Twilio stream carries; ``index.tsv`` names each file, its
speed and the words said. Piper does not say a text the same way twice, so the audio is
committed rather than synthesized at test time. Made, and picked (the turns on which the
agents' whisper prompt changes the errors), by ``python -m benchmarks.stt_prompt
--write-set tests/voice/data/phone_line --pick``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voice.audio import SAMPLE_RATE, resample, ulaw_decode

DATA = Path(__file__).parents[1] / "tests" / "voice" / "data" / "phone_line"


@dataclass(frozen=True, slots=True)
class PhoneLine:
    name: str
    text: str
    speed: float
    pcm: bytes  # PCM16 16 kHz, as the gateway's Twilio leg turns the line's audio into


def load_phone_lines(directory: Path = DATA) -> list[PhoneLine]:
    out = []
    for row in (directory / "index.tsv").read_text().splitlines():
        if row.startswith("#") or not row.strip():
            continue
        name, speed, text = row.split("\t")
        ulaw = (directory / f"{name}.ulaw").read_bytes()
        out.append(PhoneLine(name, text, float(speed),
                             resample(ulaw_decode(ulaw), 8000, SAMPLE_RATE)))
    return out
