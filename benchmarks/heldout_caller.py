"""The held-out caller (benchmarks/data/heldout_caller/): phone calls to the demo agents in
voices that no test, tuning or development set uses, for latency figures on speech the
turn-taking was never tuned on. Never tune on it: no end-of-turn, VAD, STT prompt or NLU
change may be chosen by looking at it; it only reports figures.

Each call is a short script (3-5 turns: booking, a support problem, an ops status
question, yes/no answers, names, dates and times, a goodbye), written for this set and
spoken by Debian's festival, one voice per call:

* ``ked_diphone`` (festvox-kdlpc16k), a male US diphone voice used nowhere else;
* ``cmu_us_slt_arctic_hts`` (festvox-us-slt-hts): the SLT speaker, whom the NLU held-out
  sets hear through flite (tests/agents/data/heldout*), here by a different synthesiser
  (HTS); no tuning, development or test set of the turn-taking or the recogniser uses her.

Each turn is trimmed to its speech (100 ms kept either side), sent through the telephone
band (``voice.perturb.telephone``: 300-3400 Hz, G.711 mu-law at 8 kHz) and stored as the
8 kHz mu-law bytes a Twilio stream carries; ``index.tsv`` names each file, its voice, the
words said and its call script. The audio is committed, so nothing is synthesised at test
or benchmark time.

    python -m benchmarks.heldout_caller           # what the set holds
    python -m benchmarks.heldout_caller --write   # regenerate (apt-get install festival
                                                  #   festvox-kdlpc16k festvox-us-slt-hts)
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from gateway.evaluation.caller_audio import load_caller_audio, voiced_frames
from voice.audio import FRAME_BYTES, SAMPLE_RATE, resample, ulaw_decode, ulaw_encode
from voice.perturb import telephone

DATA = Path(__file__).parent / "data" / "heldout_caller"
LINE_RATE = 8000
MIN_S, MAX_S = 0.3, 4.0  # a caller's turn on the phone: "No." to a long sentence
PAD_FRAMES = 5  # 100 ms of the synthesiser's own silence kept around the speech
KED, SLT = "festival:ked_diphone", "festival:cmu_us_slt_arctic_hts"

# (script, voice, turns): written for this set, none taken from the NLU or test sentences
Scripts = tuple[tuple[str, str, tuple[str, ...]], ...]
SCRIPTS: Scripts = (
    ("book_new", KED, (
        "Hi, I need to book an appointment.",
        "Thursday at two thirty in the afternoon.",
        "Yes, that works.",
        "It's Daniel Okafor.",
        "Thanks, bye.")),
    ("wifi_drops", SLT, (
        "The internet cuts out every few minutes.",
        "I already restarted the router twice.",
        "No, the lights are all green.",
        "Okay, can you open a ticket for me?",
        "Great, thank you. Goodbye.")),
    ("ops_search", KED, (
        "Is the search service working right now?",
        "What about the database?",
        "And the website, any errors?",
        "That's everything, thanks.")),
    ("move_visit", SLT, (
        "Can I move my appointment to next Monday?",
        "Around nine in the morning, please.",
        "Yeah, go ahead.",
        "Okay, goodbye.")),
    ("sign_in", KED, (
        "I can't get into my account since this morning.",
        "It says my password is wrong.",
        "Yes, I tried resetting it.",
        "No, that's it. Bye now.")),
    ("charged_twice", SLT, (
        "There are two charges on my bill for the same day.",
        "Both on the third of March, I think.",
        "Yes, please refund one of them.",
        "Can I speak to someone about it?")),
    ("ops_payments", KED, (
        "How's the payments service doing today?",
        "Has the login service had any problems?",
        "Okay, good to know.",
        "Okay, bye then.")),
    ("name_first", SLT, (
        "Hello, this is Ingrid Vasquez calling.",
        "I'd like a visit on Friday the twelfth.",
        "Four o'clock if you have it.",
        "No, make it five.",
        "Perfect, see you then.")),
    ("note_plumber", KED, (
        "I want to leave myself a reminder.",
        "Ring the electrician back before noon tomorrow.",
        "Yes, save it.",
        "Thank you, goodbye.")),
    ("ops_ci", SLT, (
        "Hello, is anyone there?",
        "Is the build pipeline backed up?",
        "How many jobs are waiting?",
        "Alright, cheers.")),
)


class HeldOutError(RuntimeError):
    """The committed set is missing, inconsistent, or a turn is not a caller's turn."""


@dataclass(frozen=True, slots=True)
class CallerTurn:
    name: str
    voice: str
    text: str
    script: str
    pcm: bytes  # PCM16 16 kHz, as the gateway's Twilio leg turns the line's audio into

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE


def synthesise(text: str, voice: str) -> bytes:
    """PCM16 16 kHz of ``text`` said by ``voice``: ``festival:<name>`` (Debian's festival)
    or ``espeak:<voice>[@<words a minute>]`` (espeak-ng)."""
    engine, _, name = voice.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        if engine == "festival":
            command = ["text2wave", "-F", str(SAMPLE_RATE), "-eval", f"(voice_{name})",
                       "-o", str(out)]
        elif engine == "espeak":
            name, _, wpm = name.partition("@")
            command = ["espeak-ng", "-v", name, "-s", wpm or "160", "-w", str(out),
                       "--stdin"]
        else:
            raise HeldOutError(f"unknown voice {voice!r}: festival:<name> or espeak:<voice>")
        subprocess.run(command, input=text.encode(), capture_output=True, check=True)
        return load_caller_audio(out)


def trim(pcm: bytes) -> bytes:
    """The speech with ``PAD_FRAMES`` of the synthesiser's own silence either side."""
    voiced = [i for i, v in enumerate(voiced_frames(pcm)) if v]
    if not voiced:
        raise HeldOutError("no speech in the synthesised audio")
    start = max(0, voiced[0] - PAD_FRAMES) * FRAME_BYTES
    return pcm[start:(voiced[-1] + 1 + PAD_FRAMES) * FRAME_BYTES]


def to_line(pcm: bytes) -> bytes:
    """Caller speech as a Twilio stream carries it: band-limited, 8 kHz mu-law."""
    return ulaw_encode(resample(telephone(pcm), SAMPLE_RATE, LINE_RATE))


def from_line(ulaw: bytes) -> bytes:
    """The line's mu-law back at 16 kHz, as the gateway's Twilio leg decodes it."""
    return resample(ulaw_decode(ulaw), LINE_RATE, SAMPLE_RATE)


def phone_turn(text: str, voice: str) -> bytes:
    """``text`` said by ``voice``, trimmed to its speech, as the line's 8 kHz mu-law."""
    return to_line(trim(synthesise(text, voice)))


def write(directory: Path = DATA, scripts: Scripts = SCRIPTS) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["# name\tvoice\ttext\tscript: 8 kHz mu-law, one file per turn, in call order "
            f"(python -m benchmarks.{directory.name} --write)"]
    for script, voice, turns in scripts:
        for k, text in enumerate(turns, 1):
            name = f"{script}_{k}"
            ulaw = phone_turn(text, voice)
            seconds = len(ulaw) / LINE_RATE
            if not MIN_S <= seconds <= MAX_S:
                raise HeldOutError(f"{name}: {seconds:.2f} s is not a phone turn "
                                   f"({MIN_S}-{MAX_S} s): {text!r}")
            (directory / f"{name}.ulaw").write_bytes(ulaw)
            rows.append("\t".join([name, voice, text, script]))
            print(f"{name:16} {voice:32} {seconds:4.2f} s  {text}", flush=True)
    (directory / "index.tsv").write_text("\n".join(rows) + "\n")


def load(directory: Path = DATA) -> list[CallerTurn]:
    """Every turn of the set, in call order."""
    index = directory / "index.tsv"
    if not index.is_file():
        raise HeldOutError(f"no {index}: run python -m benchmarks.heldout_caller --write "
                           "(benchmarks.dev_caller for the development caller)")
    out = []
    for line in index.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise HeldOutError(f"{index}: want name, voice, text, script: {line!r}")
        name, voice, text, script = fields
        path = directory / f"{name}.ulaw"
        if not path.is_file():
            raise HeldOutError(f"{index} names {name}, but there is no {path.name}")
        out.append(CallerTurn(name, voice, text, script, from_line(path.read_bytes())))
    return out


def calls(directory: Path = DATA) -> list[list[CallerTurn]]:
    """The set's calls, each its turns in order."""
    return [list(turns) for _, turns in groupby(load(directory), key=lambda t: t.script)]


def main(argv: list[str] | None = None, directory: Path = DATA,
         scripts: Scripts = SCRIPTS) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="synthesise the set again")
    args = parser.parse_args(argv)
    if args.write:
        write(directory, scripts)
    turns = load(directory)
    for voice in sorted({t.voice for t in turns}):
        secs = [t.seconds for t in turns if t.voice == voice]
        print(f"{voice:32} {len(secs):3} turns, {min(secs):.2f}-{max(secs):.2f} s, "
              f"{sum(secs):.1f} s in all")
    print(f"{len(calls(directory))} calls, {len(turns)} turns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
