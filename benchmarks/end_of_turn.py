"""How much silence ends a turn: false cut-offs (a caller pausing inside a sentence is cut)
against the silence a finished turn waits, on real speech with natural pauses.

    python -m benchmarks.end_of_turn [--limit 150] [--smart-turn PATH.onnx] [--stt MODEL]
        [--line] [--out FILE.json]

Every Asterisk prompt with a transcript (one speaker, studio recordings, 8 kHz telephone
band; many are several clauses long with natural pauses: "Please enter the number you
wish to call, followed by the pound key.") is run through the session's own segmenter
(``voice.vad.Segmenter``, default settings) followed by 1.5 s of line silence. Each pause
inside a prompt is a place where a turn must NOT end; the prompt's end is where it must.
At each pause the speculative transcript is what the recogniser (``--stt``: tiny.en or
moonshine-base) makes of the audio so far (what ``voice.speculation`` hands the listener)
and ``voice.turns.sounds_finished`` reads it: the rule rests on the recogniser's
punctuation, so each recogniser is measured.

The rule today: end after ``end_silence_ms`` of silence when the transcript reads as
finished, after ``end_silence_max_ms`` otherwise. For each pair it counts false cut-offs
(pauses inside a prompt that reach the rule's silence) and the silence a prompt's real end
waits (median, p90), the time the transcript takes not included (the recogniser runs from the
first 100 ms of silence on; ``benchmarks.call_latency`` measures the whole).

``--line`` puts each prompt through a Twilio line first (8 kHz mu-law and back), as the
server hears a phone caller. "From the voice" adds, at each prompt's end, how much later
the segmenter's last voiced frame is than a benchmark caller's (webrtcvad and -45 dBFS on
the clean prompt, ``gateway.evaluation.caller_audio.voiced_frames``): the wait a caller's
clock sees, as ``benchmarks.call_latency`` measures it.

``--smart-turn`` also scores the open Smart Turn v3 audio model (an ONNX file, e.g. the
one inside the pipecat-ai wheel) at each pause, on the audio up to the pause plus
``ST_SILENCE_MS`` of silence, and the rules that use it.

Prints a table and writes benchmarks/results/end_of_turn.json (``end_of_turn_<model>.json``
for another recogniser), stamped with its provenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run_all import stamp
from gateway.evaluation.caller_audio import voiced_frames, wire_frames
from gateway.evaluation.speech import SOUNDS_DIR, PromptNotFound, load_prompt
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import FRAME_BYTES, FRAME_MS, resample, ulaw_decode
from voice.config import SttConfig, VadConfig
from voice.services import recogniser
from voice.turns import sounds_finished
from voice.vad import Pause, Resume, Segmenter, VadState

RESULTS = Path(__file__).parent / "results"
TAIL_MS = 1500
MAX_PROMPT_S = 8  # longer prompts are IVR menus, not a caller's turn
ST_SILENCE_MS = 200  # Smart Turn is asked once the silence is this long (a pause: 100)


@dataclass
class Gap:
    """A pause: inside a prompt (``final`` False) or its end."""

    prompt: str
    silence_ms: int  # the longest silence it reached before speech resumed
    prefix: bytes  # the utterance up to the pause (as the speculative job gets it)
    final: bool
    text: str = ""
    finished: bool = False  # by the rule the listener uses with this recogniser
    punctuated: bool = False  # by the final punctuation (whisper's rule)
    # the reference transcript has a sentence end here: a caller could stop at it, so it
    # is not counted as a false cut-off (only pauses inside a sentence are)
    between_sentences: bool = False
    smart_turn: float | None = None
    # at the prompt's end: the segmenter's last voiced frame less the caller's (a benchmark
    # caller's "last voiced frame", gateway.evaluation.caller_audio.voiced_frames)
    overhang_ms: int = 0


def on_the_line(pcm: bytes) -> bytes:
    """``pcm`` as the server gets it from a Twilio stream (8 kHz mu-law, back to 16 kHz)."""
    return resample(ulaw_decode(b"".join(wire_frames(pcm, "twilio"))), 8000, 16000)


def gaps_of(name: str, pcm: bytes, config: VadConfig | None = None,
            line: bool = False) -> list[Gap]:
    seg = Segmenter(config or VadConfig())
    spoken = [i for i, v in enumerate(voiced_frames(pcm)) if v]
    if line:
        pcm = on_the_line(pcm)
    gaps: list[Gap] = []
    frames = pcm + b"\0" * (TAIL_MS * 32)
    current: Gap | None = None
    for i in range(len(frames) // FRAME_BYTES):
        event = seg.process(frames[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
        if isinstance(event, Pause):
            current = Gap(name, 0, seg.utterance(), final=False)
            gaps.append(current)
        elif isinstance(event, Resume):
            current = None
        if current is not None and seg.state is VadState.PAUSED:
            current.silence_ms = max(current.silence_ms, seg.silence_ms)
    if gaps and current is gaps[-1]:
        current.final = True
        current.overhang_ms = seg.last_voiced_ms - (spoken[-1] + 1) * FRAME_MS if spoken else 0
    return gaps


def smart_turn_scorer(path: Path) -> Any:
    import onnxruntime
    from faster_whisper.feature_extractor import FeatureExtractor

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    features = FeatureExtractor(feature_size=80, chunk_length=8)

    def score(pcm: bytes) -> float:
        audio = np.frombuffer(pcm, np.int16).astype(np.float32)[-8 * 16000 :] / 32768
        audio = np.pad(audio, (8 * 16000 - audio.size, 0))
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        mel = features(audio, padding=0)[:, :800].astype(np.float32)
        return float(session.run(None, {"input_features": mel[None]})[0].ravel()[0])

    return score


def prompts(limit: int) -> list[str]:
    names = sorted(p.stem for p in SOUNDS_DIR.glob("*.wav"))
    found: list[str] = []
    for name in names:
        try:
            load_prompt(name)
        except PromptNotFound:
            continue
        text = load_prompt(name)[1].strip()
        if not text.startswith(("...", "…")) and not text.endswith(("...", "…")):
            found.append(name)  # fragments ("If this is correct, press...") are no turns
    # what a caller might say in one turn: up to MAX_PROMPT_S; the multi-clause ones first
    # (they hold the pauses that must not end a turn), then the shortest
    found = [n for n in found if len(load_prompt(n)[0]) <= MAX_PROMPT_S * 32000]
    found.sort(key=lambda n: (load_prompt(n)[1].count(",") == 0, len(load_prompt(n)[0]), n))
    return found[:limit]


def _sentence_end(reference: str, heard: str) -> bool:
    """Does the reference's word at the position the heard prefix ends on close a
    sentence (the prefix's word count, so a misheard word does not shift it)?"""
    words = reference.split()
    count = len(heard.split())
    return 0 < count <= len(words) and words[count - 1].rstrip("\"')").endswith((".", "?", "!"))


def collect(limit: int, smart_turn: Path | None, data: Path, model: str = "tiny.en",
            vad: VadConfig | None = None, line: bool = False) -> tuple[list[Gap], list[float]]:
    config = SttConfig.model_validate({"model": model})
    stt = recogniser(config, data, Bulkhead("bench-eot", 1, 0))
    stt.load()
    stt.warmup()
    score = smart_turn_scorer(smart_turn) if smart_turn is not None else None
    gaps: list[Gap] = []
    st_ms: list[float] = []
    for name in prompts(limit):
        pcm, reference = load_prompt(name)
        for gap in gaps_of(name, pcm, vad, line):
            gap.text = stt.transcribe_sync(gap.prefix).text
            gap.finished = bool(gap.text) and sounds_finished(
                gap.text, trust_punctuation=not config.moonshine)
            gap.punctuated = bool(gap.text) and sounds_finished(gap.text)
            gap.between_sentences = not gap.final and _sentence_end(reference, gap.text)
            if score is not None:
                started = time.perf_counter()
                pad = ST_SILENCE_MS - VadConfig().pause_ms  # the prefix holds the pause
                gap.smart_turn = score(gap.prefix + b"\0" * (pad * 32))
                st_ms.append((time.perf_counter() - started) * 1000)
            gaps.append(gap)
    return gaps, st_ms


Rule = tuple[str, Any]  # (name, gap -> silence in ms after which the turn ends there)


def rules(with_smart_turn: bool) -> list[Rule]:
    out: list[Rule] = [(f"silence {n}", lambda g, n=n: n) for n in (300, 440, 600, 900)]
    for short in (160, 240, 320, 400):
        for long in (600, 900):
            out.append((f"text {short}/{long}",
                        lambda g, s=short, m=long: s if g.finished else m))
    for long in (600, 900):  # differs from "text" only for a recogniser not trusted on it
        out.append((f"punctuation 320/{long}", lambda g, m=long: 320 if g.punctuated else m))
    if with_smart_turn:
        for long in (600, 900):
            out.append((f"smart {ST_SILENCE_MS}/{long}",
                        lambda g, m=long: ST_SILENCE_MS if g.smart_turn > 0.5 else m))
            out.append((f"text or smart 320/{long}",
                        lambda g, m=long: 320 if g.finished or g.smart_turn > 0.5 else m))
            out.append((f"text and smart 240/{long}",
                        lambda g, m=long: 240 if g.finished and g.smart_turn > 0.5 else m))
    return out


def score_rule(gaps: list[Gap], rule: Any) -> dict[str, Any]:
    inside = [g for g in gaps if not g.final and not g.between_sentences]
    cut = [g for g in inside if rule(g) <= g.silence_ms]
    waits = [float(rule(g)) for g in gaps if g.final]
    heard = [float(rule(g) + g.overhang_ms) for g in gaps if g.final]
    return {
        "false_cutoffs": len(cut), "pauses": len(inside),
        "prompts_cut": len({g.prompt for g in cut}),
        "end_wait_ms": {"median": statistics.median(waits), "mean": round(statistics.mean(waits)),
                        "p90": float(np.percentile(waits, 90))},
        # the same from the caller's last voiced frame: what a caller's clock sees
        "end_wait_from_voice_ms": {"median": statistics.median(heard),
                                   "mean": round(statistics.mean(heard)),
                                   "p90": float(np.percentile(heard, 90))},
        "examples": [f"{g.prompt}: {g.text!r} ({g.silence_ms} ms)" for g in cut[:5]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--smart-turn", type=Path, default=None)
    parser.add_argument("--stt", default="tiny.en")
    parser.add_argument("--line", action="store_true",
                        help="through a Twilio line (mu-law 8 kHz) first")
    parser.add_argument("--out", default=None, help="file name under benchmarks/results/")
    args = parser.parse_args()
    vad = VadConfig()
    with tempfile.TemporaryDirectory() as data:
        gaps, st_ms = collect(args.limit, args.smart_turn, Path(data), args.stt, vad, args.line)
    finals = [g for g in gaps if g.final]
    report: dict[str, Any] = {
        "prompts": len(finals), "pauses_inside": len(gaps) - len(finals),
        "pauses_between_sentences": sum(g.between_sentences for g in gaps),
        "vad": vad.model_dump(), "line": args.line,
        "pause_silence_ms": sorted(g.silence_ms for g in gaps if not g.final),
        "overhang_ms": sorted(g.overhang_ms for g in finals),
        "ends_read_finished": round(sum(g.finished for g in finals) / len(finals), 3),
        "pauses_read_finished": round(sum(g.finished for g in gaps if not g.final)
                                      / max(1, len(gaps) - len(finals)), 3),
        "rules": {name: score_rule(gaps, rule) for name, rule in rules(bool(st_ms))},
    }
    if st_ms:
        report["smart_turn_ms"] = {"median": round(statistics.median(st_ms), 1),
                                   "p90": round(float(np.percentile(st_ms, 90)), 1)}
        report["smart_turn_ends_complete"] = round(
            sum((g.smart_turn or 0) > 0.5 for g in finals) / len(finals), 3)
        report["smart_turn_pauses_complete"] = round(
            sum((g.smart_turn or 0) > 0.5 for g in gaps if not g.final)
            / max(1, len(gaps) - len(finals)), 3)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (args.out or ("end_of_turn.json" if args.stt == "tiny.en"
                                   else f"end_of_turn_{args.stt}.json"))
    path.write_text(json.dumps(report, indent=2) + "\n")
    stamp(path, ["end_of_turn", *sys.argv[1:]])
    print(f"{report['prompts']} prompts, {report['pauses_inside']} pauses inside them "
          f"({report['pauses_between_sentences']} between sentences, not counted); "
          f"transcript reads finished at {report['ends_read_finished']:.0%} of ends, "
          f"{report['pauses_read_finished']:.0%} of pauses")
    if st_ms:
        print(f"smart turn: {report['smart_turn_ms']} ms per call; complete at "
              f"{report['smart_turn_ends_complete']:.0%} of ends, "
              f"{report['smart_turn_pauses_complete']:.0%} of pauses")
    print(f"{'rule':<26} {'cut':>4} {'prompts':>7} {'end wait p50/mean/p90 ms':>26} "
          f"{'from the voice':>16}")
    for name, row in report["rules"].items():
        wait, heard = row["end_wait_ms"], row["end_wait_from_voice_ms"]
        print(f"{name:<26} {row['false_cutoffs']:>4} {row['prompts_cut']:>7} "
              f"{wait['median']:>10.0f}/{wait['mean']:.0f}/{wait['p90']:.0f} "
              f"{heard['median']:>10.0f}/{heard['mean']:.0f}/{heard['p90']:.0f}")


if __name__ == "__main__":
    main()
