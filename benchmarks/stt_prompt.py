"""Does the agents' whisper prompt help over a phone line, and how stable is that?

    python -m benchmarks.stt_prompt [--runs 5] [--set clean|committed] [--speeds 1.0 1.15]
    python -m benchmarks.stt_prompt --write-set tests/voice/data/phone_line --pick

Every utterance of the set is spoken by piper (joe), sent over a band-limited 8 kHz mu-law
line (``voice.perturb.telephone``) as said and at each ``--speeds`` factor, and
transcribed by whisper tiny.en (the gateway's ``WhisperSTT`` options) without and with the
agents' ``stt_prompt``, ``--runs`` times (whisper on two threads does not decode every
turn the same way twice). Prints the corpus WER of both, the gain per run, its mean and
spread, and the utterances whose transcript changes between runs or with the prompt.

Sets: ``clean`` is every utterance of tests/agents/data/intents.tsv marked clean (as
a caller says it; 123 of them); ``committed`` is tests/voice/data/phone_line/ (the
utterances the unit test uses, already through the line; ``--speeds`` does not apply).

``--write-set DIR`` keeps the clean set's line audio (8 kHz mu-law, one file each, and
``index.tsv``); with ``--pick``, only the lines where the prompt changes the number of
word errors, for better or worse: the committed set of the unit test (the other lines
add the same errors to both sides, so the set carries the difference the prompt makes,
in a tenth of the time). Storing as 8 kHz mu-law changes a borderline turn's transcript
now and then, so the lines are picked twice: on the measured audio, then again as read
back from the files.

Writes benchmarks/results/stt_prompt_<set>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from gateway.evaluation.checks import word_errors
from gateway.evaluation.speech import corpus_wer
from voice.audio import SAMPLE_RATE, resample, ulaw_encode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
INTENTS = ROOT / "tests" / "agents" / "data" / "intents.tsv"
COMMITTED = ROOT / "tests" / "voice" / "data" / "phone_line"


def agents_prompt() -> str:
    config = yaml.safe_load((ROOT / "orchestration" / "agents" / "default.yaml").read_text())
    return str(config["stt_prompt"])


def clean_utterances() -> list[str]:
    texts = []
    for line in INTENTS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, kind, text = line.split("\t")[:3]
        if kind == "clean":
            texts.append(text)
    return texts


def phone_lines(speeds: list[float]) -> list[tuple[str, str, bytes]]:
    """(name, reference, PCM16 16 kHz after the line) for the clean set."""
    from orchestration.patterns.bulkhead import Bulkhead
    from voice.config import TtsConfig
    from voice.perturb import change_speed, telephone
    from voice.tts import PiperTTS

    tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 4))
    out = []
    for i, text in enumerate(clean_utterances()):
        audio = resample(tts.synthesize_sync(text), tts.sample_rate, SAMPLE_RATE)
        for speed in speeds:
            out.append((f"{i:03d}@{speed}", text, telephone(change_speed(audio, speed))))
    return out


def write_set(directory: Path, lines: list[tuple[str, str, bytes]],
              keep: set[str] | None) -> None:
    """The lines as a Twilio stream carries them: 8 kHz mu-law, and an index."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["# name\tspeed\ttext: piper joe -> voice.perturb.telephone -> 8 kHz mu-law "
            "(made by benchmarks/stt_prompt.py --write-set)"]
    for name, text, pcm in lines:
        if keep is not None and name not in keep:
            continue
        (directory / f"{name}.ulaw").write_bytes(ulaw_encode(resample(pcm, SAMPLE_RATE, 8000)))
        rows.append(f"{name}\t{name.split('@')[1]}\t{text}")
    (directory / "index.tsv").write_text("\n".join(rows) + "\n")


def pick(errors: dict[str, list[tuple[int, int]]]) -> set[str]:
    """The lines where the prompt changes the word errors, either way, in any run: the
    others add the same to both sides, so these carry the whole difference."""
    return {name for name, runs in errors.items() if any(p != q for p, q in runs)}


def repick(directory: Path, stt: Any, prompt: str) -> int:
    """Keep only the written lines on which the prompt still changes the errors."""
    from benchmarks.phone_line import load_phone_lines

    keep = set()
    for line in load_phone_lines(directory):
        plain = word_errors(line.text, stt.transcribe_sync(line.pcm).text)[0]
        if plain != word_errors(line.text, stt.transcribe_sync(line.pcm, prompt).text)[0]:
            keep.add(line.name)
    header, *rows = (directory / "index.tsv").read_text().splitlines()
    kept = [header]
    for row in rows:
        name = row.split("\t")[0]
        if name in keep:
            kept.append(row)
        else:
            (directory / f"{name}.ulaw").unlink()
    (directory / "index.tsv").write_text("\n".join(kept) + "\n")
    return len(keep)


def committed_lines() -> list[tuple[str, str, bytes]]:
    from benchmarks.phone_line import load_phone_lines

    return [(u.name, u.text, u.pcm) for u in load_phone_lines()]


def summarize(name: str, utterances: int, runs: list[dict[str, Any]],
              seen: dict[tuple[str, bool], Counter[str]],
              errors: dict[str, list[tuple[int, int]]]) -> dict[str, Any]:
    """The figures of all runs, and the transcripts that changed between runs."""
    gains = [r["gain"] for r in runs]
    unstable = {f"{n} {'prompted' if p else 'plain'}": dict(c)
                for (n, p), c in seen.items() if len(c) > 1}
    return {
        "set": name, "utterances": utterances, "runs": runs,
        "plain_mean": statistics.mean(r["plain"] for r in runs),
        "prompted_mean": statistics.mean(r["prompted"] for r in runs),
        "gain_mean": statistics.mean(gains), "gain_min": min(gains), "gain_max": max(gains),
        "gain_stdev": statistics.stdev(gains) if len(gains) > 1 else 0.0,
        "unstable": unstable, "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--set", choices=["clean", "committed"], default="clean")
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 1.15])
    parser.add_argument("--write-set", type=Path, default=None)
    parser.add_argument("--pick", action="store_true")
    args = parser.parse_args()

    from orchestration.patterns.bulkhead import Bulkhead
    from voice.config import SttConfig
    from voice.stt import WhisperSTT

    lines = phone_lines(args.speeds) if args.set == "clean" else committed_lines()
    prompt = agents_prompt()
    stt = WhisperSTT(SttConfig(model="tiny.en"), Path(tempfile.mkdtemp()),
                     Bulkhead("bench-stt", 1, 4))
    stt.load()
    stt.warmup()
    runs: list[dict[str, Any]] = []
    seen: dict[tuple[str, bool], Counter[str]] = {}
    errors: dict[str, list[tuple[int, int]]] = {}  # name -> (plain, prompted) errors per run
    for run in range(args.runs):
        started = time.perf_counter()
        pairs: dict[bool, list[tuple[str, str]]] = {False: [], True: []}
        for name, text, pcm in lines:
            for prompted in (False, True):
                heard = stt.transcribe_sync(pcm, prompt if prompted else None).text
                pairs[prompted].append((text, heard))
                seen.setdefault((name, prompted), Counter())[heard] += 1
            plain_heard, prompted_heard = pairs[False][-1][1], pairs[True][-1][1]
            errors.setdefault(name, []).append(
                (word_errors(text, plain_heard)[0], word_errors(text, prompted_heard)[0]))
        plain, with_prompt = corpus_wer(pairs[False]), corpus_wer(pairs[True])
        runs.append({"plain": plain, "prompted": with_prompt, "gain": plain - with_prompt,
                     "seconds": time.perf_counter() - started})
        print(f"run {run + 1}: WER plain {plain:.1%}, prompted {with_prompt:.1%}, "
              f"gain {plain - with_prompt:+.1%} ({runs[-1]['seconds']:.0f} s)", flush=True)
    gains = [r["gain"] for r in runs]
    summary = summarize(args.set, len(lines), runs, seen, errors)
    unstable = summary["unstable"]
    print(f"{len(lines)} utterances, {args.runs} runs: WER plain {summary['plain_mean']:.1%}, "
          f"prompted {summary['prompted_mean']:.1%}; gain {summary['gain_mean']:+.1%} "
          f"(min {min(gains):+.1%}, max {max(gains):+.1%}, sd {summary['gain_stdev']:.2%}); "
          f"{len(unstable)} transcripts changed between runs")
    for key, counts in sorted(unstable.items()):
        print(f"  {key}: {counts}")
    if args.write_set is not None:
        keep = pick(errors) if args.pick else None
        write_set(args.write_set, lines, keep)
        written = repick(args.write_set, stt, prompt) if args.pick else len(lines)
        print(f"wrote {written} lines to {args.write_set}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"stt_prompt_{args.set}.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
