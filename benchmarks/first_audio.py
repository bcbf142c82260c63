"""Time to the first agent audio on the TTS side, over the agents' real replies.

    python -m benchmarks.first_audio [--runs 5]

The replies are every line the shipped agents speak (orchestration/agents/default.yaml and
its flows, placeholders filled with typical values). For each reply, the first chunk the
speaker would synthesise is timed with piper joe (the fastest of ``--runs``, interleaved:
the machine is shared), for several
first-chunk rules:

* ``split_60``: the first sentence cut at its first clause when longer than 60 characters
  (the default before issue 14);
* ``split_N``: the same at N characters (N=0: always at the first clause that leaves
  three words before it and two after); ``split_N_wK``: K words before it are enough
  ("Sorry, | I didn't get that.");
* ``whole_sentence``: the first sentence whole.

"heard" is the synthesis time plus the leading silence of piper's output (what the
caller hears: piper starts most utterances with 10-40 ms of near silence), with and
without trimming it (``voice.tts.trim_leading_silence``); "warm" is the same in a process
that has said every line before: a first chunk without a caller's name, time or step in it
comes from the phrase cache (``voice.tts_cache``) at no synthesis cost ("cached": what a
hit costs).

Prints a table and writes benchmarks/results/first_audio.json, stamped with its provenance.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.run_all import stamp
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import ms_of
from voice.config import TtsConfig
from voice.tts import KEEP_LEAD_MS, PiperTTS, leading_silence_ms, split_sentences

RESULTS = Path(__file__).parent / "results"
AGENTS = Path(__file__).parent.parent / "orchestration" / "agents"
FILL = {"name": "Sam", "booking": "Tuesday at 10 AM", "number": "1"}
FILL_OTHER = "the router"
NOT_SAID = frozenset({"description", "stt_prompt"})
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_CODE = re.compile(r"==|!=|\$|\bturn\.|\bvars\.|\bsteps\.|^[a-z_.]+$")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):  # descriptions and the recogniser's prompt are not said
        return [s for key, value in node.items() if key not in NOT_SAID for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _fill(text: str) -> str:
    return _PLACEHOLDER.sub(lambda m: FILL.get(m.group(1).split(".")[-1], FILL_OTHER), text)


def agent_replies() -> list[str]:
    """Every spoken line of the shipped agents: strings of two words or more starting with
    a capital letter, not guards or expressions."""
    files = [AGENTS / "default.yaml", *sorted((AGENTS / "flows").glob("*.yaml"))]
    lines: list[str] = []
    for path in files:
        for text in _strings(yaml.safe_load(path.read_text())):
            text = text.strip()
            if len(text.split()) >= 2 and text[:1].isupper() and not _CODE.search(text):
                lines.append(_fill(text))
    return sorted(set(lines))


def _fixed(chunk: str) -> bool:
    return not any(value in chunk for value in (*FILL.values(), FILL_OTHER))


def first_chunk(text: str, rule: str) -> str:
    if rule == "whole_sentence":
        return split_sentences(text, 10_000)[0]
    _, chars, *words = rule.split("_")  # split_N or split_N_wK: K words before the cut
    head_words = int(words[0][1:]) if words else 3
    return split_sentences(text, int(chars), head_words)[0]


def timed(tts: PiperTTS, texts: list[str], runs: int) -> dict[str, tuple[float, bytes]]:
    """Each text's synthesis time in ms and its audio. The texts are interleaved run by run
    so the machine's load (shared, noisy) falls on every rule alike; the minimum of the
    runs is the cost without other work in the way."""
    times: dict[str, list[float]] = {text: [] for text in texts}
    audio: dict[str, bytes] = {}
    for _ in range(runs):
        for text in texts:
            started = time.perf_counter()
            audio[text] = tts.synthesize_sync(text)
            times[text].append((time.perf_counter() - started) * 1000)
    return {text: (min(times[text]), audio[text]) for text in texts}


def dist(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values), 1),
            "p90_ms": round(float(np.percentile(values, 90)), 1),
            "max_ms": round(max(values), 1), "n": len(values)}


def measure(runs: int, rules: list[str]) -> dict[str, Any]:
    untrimmed = TtsConfig(cache_bytes=0, trim_leading_silence=False)
    tts = PiperTTS(untrimmed, Bulkhead("bench-tts", 1, 0))
    tts.load()
    tts.warmup()
    replies = agent_replies()
    chunks = {rule: [first_chunk(reply, rule) for reply in replies] for rule in rules}
    done = timed(tts, sorted({c for cs in chunks.values() for c in cs}), runs)
    out: dict[str, Any] = {"replies": len(replies), "runs": runs, "rules": {}}
    for rule in rules:
        synth = [done[c][0] for c in chunks[rule]]
        lead = [float(leading_silence_ms(done[c][1], tts.sample_rate)) for c in chunks[rule]]
        trimmed = [s + min(ms, KEEP_LEAD_MS) for s, ms in zip(synth, lead, strict=True)]
        out["rules"][rule] = {
            "synth": dist(synth),
            "first_heard": dist([s + ms for s, ms in zip(synth, lead, strict=True)]),
            "first_heard_trimmed": dist(trimmed),
            "leading_silence": dist(lead),
            "first_chunk_audio": dist([float(ms_of(done[c][1], tts.sample_rate))
                                       for c in chunks[rule]]),
            "under_50ms": round(sum(t <= 50 for t in trimmed) / len(trimmed), 3),
            # a process that has said each line before: fixed first chunks (no caller's
            # name, time or step in them) come from the cache
            "warm_first_heard_trimmed": dist([0.0 if _fixed(c) else t for c, t
                                              in zip(chunks[rule], trimmed, strict=True)]),
            "warm_under_50ms": round(sum(_fixed(c) or t <= 50 for c, t
                                         in zip(chunks[rule], trimmed, strict=True))
                                     / len(trimmed), 3),
            "split": sum(c != first_chunk(r, "whole_sentence")
                         for c, r in zip(chunks[rule], replies, strict=True)),
        }
    cached = PiperTTS(TtsConfig(), Bulkhead("bench-tts-cached", 1, 0))
    cached.load()
    for chunk in chunks[rules[0]]:
        cached.pin(chunk)
    out["cached"] = dist([timed(cached, [c], runs)[c][0] for c in chunks[rules[0]]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rules", default="split_60,split_0,split_0_w2,split_0_w1,whole_sentence")
    args = parser.parse_args()
    report = measure(args.runs, args.rules.split(","))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "first_audio.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    stamp(path, ["first_audio", *sys.argv[1:]])
    print(f"{report['replies']} agent replies; first chunk, fastest of {args.runs} runs")
    print(f"{'rule':<16} {'synth':>9} {'heard':>9} {'trimmed':>9} {'<=50ms':>7} "
          f"{'warm':>9} {'<=50ms':>7} {'split':>5}   (ms, p50/p90)")
    for rule, row in report["rules"].items():
        cells = [f"{row[k]['p50_ms']:.0f}/{row[k]['p90_ms']:.0f}" for k in
                 ("synth", "first_heard", "first_heard_trimmed", "warm_first_heard_trimmed")]
        print(f"{rule:<16} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9} {row['under_50ms']:>7.0%} "
              f"{cells[3]:>9} {row['warm_under_50ms']:>7.0%} {row['split']:>5}")
    c = report["cached"]
    print(f"{'cached':<16} {c['p50_ms']:.1f}/{c['p90_ms']:.1f} ms")


if __name__ == "__main__":
    main()
