"""Whisper tiny.en against Moonshine base on the same phone-line speech: errors and cost.

    python -m benchmarks.stt_engines [--asterisk 150] [--runs 2]

Sets, every one through the telephone band as a Twilio call carries it (8 kHz mu-law):

* ``human``: Asterisk prompts of 0.6-4 s (one human voice, the recordings' transcripts);
* ``agents``: the clean caller turns of tests/agents/data/intents.tsv spoken by piper joe
  (``benchmarks.stt_prompt.phone_lines``); whisper gets the agents' ``stt_prompt`` as in
  a call (Moonshine takes no prompt);
* ``non-speech``: silence, faint and loud noise, a cough, clicks: what each recogniser
  writes for them after ``voice.stt.is_non_speech`` (it should write nothing).

Engines: ``tiny.en``, ``moonshine-base`` (the default: whisper hears its short turns
too, ``fallbacks``, and its words win when Moonshine doubts its own or whisper is surer,
``overruled``) and ``moonshine-alone`` (without whisper).

Per engine and set: corpus WER (``gateway.evaluation.speech.corpus_wer``) and latency per
utterance, p50/p95, over all and over the short ones (< 1.5 s: most answers on a call),
the best of ``--runs`` runs per utterance (the machine is shared). Both recognisers run
through the gateway's own classes on 2 threads, one job at a time.
Writes benchmarks/results/stt_engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nlu_speech import telephone
from benchmarks.run_all import stamp
from benchmarks.stt_prompt import agents_prompt, phone_lines
from benchmarks.stt_tts import _non_speech
from gateway.evaluation.checks import percentile
from gateway.evaluation.speech import PromptNotFound, _transcripts, corpus_wer, load_prompt
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import SAMPLE_RATE
from voice.config import SttConfig
from voice.services import recogniser

RESULTS = Path(__file__).parent / "results"
SHORT_MS = 1500
Item = tuple[str, str, bytes]  # name, reference text, PCM16 16 kHz


def human_set(count: int) -> list[Item]:
    names = sorted(_transcripts())
    random.Random(7).shuffle(names)
    items: list[Item] = []
    for name in names:
        try:
            pcm, text = load_prompt(name)
        except PromptNotFound:
            continue
        if 600 < len(pcm) / 32 < 4000 and text.strip(" .") and len(items) < count:
            items.append((name, text, telephone(pcm, SAMPLE_RATE)))
    return items


def pct(values: list[float], q: float) -> float:
    """``gateway.evaluation.checks.percentile`` at ``q`` (0-1), 0 for no values."""
    return round(percentile(values, q * 100) or 0.0, 1)


def run_set(stt: Any, items: list[Item], prompt: str | None, runs: int) -> dict[str, Any]:
    pairs, latency, short = [], [], []
    for name, text, pcm in items:
        best, heard = float("inf"), ""
        for _ in range(runs):
            started = time.perf_counter()
            heard = stt.transcribe_sync(pcm, prompt).text
            best = min(best, (time.perf_counter() - started) * 1000)
        pairs.append((text, heard))
        latency.append(best)
        if len(pcm) / 32 < SHORT_MS:
            short.append(best)
        del name
    return {"utterances": len(items), "wer": round(corpus_wer(pairs), 4),
            "p50_ms": pct(latency, 0.5), "p95_ms": pct(latency, 0.95),
            "short_n": len(short), "short_p50_ms": pct(short, 0.5),
            "short_p95_ms": pct(short, 0.95), "pairs": pairs}


def non_speech(stt: Any) -> dict[str, str]:
    out = {}
    for name, audio in _non_speech().items():
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        out[name] = stt.transcribe_sync(telephone(pcm, SAMPLE_RATE)).text
    return out


def engine(model: str, sets: dict[str, list[Item]], runs: int) -> dict[str, Any]:
    # "moonshine-alone": Moonshine without whisper's second opinion
    fields: dict[str, Any] = ({"model": "moonshine-base", "fallback_below_logprob": None,
                               "crosscheck_short": False, "fallback_dismissed_words": 0}
                              if model == "moonshine-alone" else {"model": model})
    config = SttConfig.model_validate(fields)
    data_dir = Path(tempfile.mkdtemp(prefix="stt-engines-"))
    pool = Bulkhead(f"bench-{model}", 1, 4)
    stt = recogniser(config, data_dir, pool)
    started = time.perf_counter()
    stt.load()
    stt.warmup()
    load_s = round(time.perf_counter() - started, 2)
    prompt = agents_prompt()
    result: dict[str, Any] = {"load_s": load_s}
    for name, items in sets.items():
        result[name] = run_set(stt, items, prompt if name == "agents" else None, runs)
    result["non_speech"] = non_speech(stt)
    result["fallbacks"] = getattr(stt, "fallbacks", 0)  # short turns whisper heard too
    result["overruled"] = getattr(stt, "overruled", 0)  # ... and whose words it gave
    return result


def report(results: dict[str, Any]) -> None:
    print(f"{'engine':16} {'set':8} {'n':>4} {'WER':>7} {'p50':>6} {'p95':>6} "
          f"{'short p50':>9} {'short p95':>9}")
    for model, per in results["engines"].items():
        for name in ("human", "agents"):
            r = per[name]
            print(f"{model:16} {name:8} {r['utterances']:4} {r['wer']:7.1%} {r['p50_ms']:6.0f} "
                  f"{r['p95_ms']:6.0f} {r['short_p50_ms']:9.0f} {r['short_p95_ms']:9.0f}")
        print(f"{model:16} non-speech: {per['non_speech']}  (load {per['load_s']} s, "
              f"whisper heard {per['fallbacks']} turns, its words won on {per['overruled']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asterisk", type=int, default=150)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--engines", default="tiny.en,moonshine-base,moonshine-alone")
    args = parser.parse_args()
    sets = {"human": human_set(args.asterisk),
            "agents": [(n, t, p) for n, t, p in phone_lines([1.0])]}
    results: dict[str, Any] = {"short_ms": SHORT_MS, "runs": args.runs, "engines": {}}
    for model in args.engines.split(","):
        results["engines"][model] = engine(model, sets, args.runs)
    report(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "stt_engines.json"
    out.write_text(json.dumps(results, indent=1))
    stamp(out, ["stt_engines", *sys.argv[1:]])
    print(f"wrote {out}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
