"""How many live callers one node holds: a ramp of concurrent phone calls on one
`voxgate serve` (default settings but the live-call cap), real human speech streamed in
real time over /ws/twilio (mu-law 8 kHz), callers started 0.7 s apart.

    python -m benchmarks.load_ramp [--steps 1,2,4,8,10,12,16] [--turns 3] [--speech heldout]

Each caller speaks ``--turns`` polite turns (the Asterisk prompts, after the agent has
been quiet 0.7 s; with ``--speech heldout`` the first turns of one of the held-out
caller's calls, benchmarks/data/heldout_caller/) and then one barge-in (a long prompt
0.9 s into the agent's reply).
Per step: response latency p50/p95 (the caller's last voiced frame -> the first agent audio
frame it received, i.e. what the caller hears), turns answered of turns spoken (the turns
a script had left when the agent ended its call on purpose, on a "Thank you.", were never
spoken; such calls are counted), recogniser runs per turn, barge-in latency (the caller's
first voiced frame over agent audio -> ``clear``), the server's CPU seconds per call
minute and its resident memory per live call (peak over the idle server). The knee is
the most callers with every turn answered and p95 <= 1,500 ms.
Writes benchmarks/results/load_ramp.json (load_ramp_heldout.json with ``--speech
heldout``), stamped with its provenance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.heldout_caller import calls as heldout_calls
from benchmarks.run_all import stamp
from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.speech import SHORT_PROMPTS, load_prompt
from gateway.servers.serve_process import ServeProcess

RESULTS = Path(__file__).parent / "results"
P95_LIMIT_MS = 1500
STAGGER_S = 0.7


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def script(caller: int, turns: int, speech: str = "asterisk") -> list[Segment]:
    if speech == "heldout":
        every = heldout_calls()
        call = every[caller % len(every)]
        said = [call[k % len(call)].pcm for k in range(turns)]
    else:
        prompts = [load_prompt(name)[0] for name in SHORT_PROMPTS]
        said = [prompts[(caller * turns + k) % len(prompts)] for k in range(turns)]
    polite = [Segment(pcm, after_agent_quiet_ms=700, wait_limit_s=30) for pcm in said]
    barge = Segment(load_prompt("vm-enter-num-to-call")[0], after_agent_audio_ms=900,
                    wait_limit_s=30)
    return [*polite, barge]


async def callers(url: str, n: int, turns: int,
                  speech: str) -> list[CallResult | BaseException]:
    async def one(i: int) -> CallResult:
        await asyncio.sleep(i * STAGGER_S)
        return await run_call(None, "twilio", url, script=script(i, turns, speech),
                              tail_s=6.0, max_call_s=180)
    return await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)


def stt_runs(node: ServeProcess) -> dict[str, float]:
    """The server's recogniser runs so far, by result (used, wasted)."""
    text = httpx.get(f"{node.url}/metrics", headers=node.headers, timeout=10).text
    return {sample.labels["result"]: sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == "voxgate_stt_runs_total"}


async def step(node: ServeProcess, n: int, turns: int, speech: str) -> dict[str, Any]:
    idle_kb, cpu0, runs0 = node.proc_figures()["rss_kb"], node.cpu_s(), stt_runs(node)
    task = asyncio.ensure_future(callers(node.url, n, turns, speech))
    peak_kb = idle_kb
    while not task.done():
        peak_kb = max(peak_kb, node.proc_figures()["rss_kb"])
        await asyncio.sleep(0.25)
    results = task.result()
    cpu_s = node.cpu_s() - cpu0
    runs = {k: v - runs0.get(k, 0.0) for k, v in stt_runs(node).items()}
    used, wasted = runs.get("used", 0.0), runs.get("wasted", 0.0)
    calls = [r for r in results if isinstance(r, CallResult)]
    latencies, clears, call_s, spoken, hung_up = [], [], 0.0, 0, 0
    for call in calls:
        call_s += call.duration_s
        polite = call.response_latencies()[:turns]
        # the agent may end a call on purpose ("Thank you." reads as a goodbye): the
        # turns its script had left were never spoken, so they are not unanswered
        hung_up += call.ended_by == "agent" and len(polite) < turns
        spoken += len(polite) if call.ended_by == "agent" else turns
        latencies += [r.latency_s for r in polite if r.latency_s is not None]
        clears += [b.clear_latency_s for b in call.barge_ins() if b.clear_latency_s is not None]
    p50, p95 = statistics.median(latencies) if latencies else None, pct(latencies, 0.95)
    return {
        "callers": n, "failed_calls": len(results) - len(calls),
        "turns_spoken": spoken + turns * (len(results) - len(calls)),
        "turns_answered": len(latencies), "calls_ended_by_agent_early": hung_up,
        "response_p50_ms": _ms(p50), "response_p95_ms": _ms(p95),
        # recogniser runs per delivered turn (barge-ins included), and of those thrown away
        "stt_runs_per_turn": round((used + wasted) / used, 2) if used else None,
        "stt_wasted_per_turn": round(wasted / used, 2) if used else None,
        "barge_in_clear_p50_ms": _ms(statistics.median(clears) if clears else None),
        "cpu_s_per_call_minute": round(cpu_s / (call_s / 60), 1) if call_s else None,
        "rss_mb_per_call": round(max(0, peak_kb - idle_kb) / 1024 / n, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def knee(steps: list[dict[str, Any]]) -> int | None:
    held = [s["callers"] for s in steps
            if s["turns_answered"] == s["turns_spoken"] and s["response_p95_ms"] is not None
            and s["response_p95_ms"] <= P95_LIMIT_MS]
    return max(held) if held else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,4,8,10,12,16")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--speech", choices=["asterisk", "heldout"], default="asterisk",
                        help="the polite turns: Asterisk prompts, or the held-out caller")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.steps.split(",")]
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, ServeProcess(
            Path(tmp), VOXGATE_MAX_SESSIONS=str(max(counts) + 4)) as node:
        for n in counts:
            steps.append(asyncio.run(step(node, n, args.turns, args.speech)))
            row = steps[-1]
            print(f"{n:>3} callers: p50 {row['response_p50_ms']} ms, p95 "
                  f"{row['response_p95_ms']} ms, answered {row['turns_answered']}/"
                  f"{row['turns_spoken']}, barge-in {row['barge_in_clear_p50_ms']} ms, "
                  f"{row['stt_runs_per_turn']} STT runs/turn "
                  f"({row['stt_wasted_per_turn']} wasted), "
                  f"{row['cpu_s_per_call_minute']} cpu s/call-min, "
                  f"{row['rss_mb_per_call']} MB/call", flush=True)
    out = {"p95_limit_ms": P95_LIMIT_MS, "stagger_s": STAGGER_S, "turns": args.turns,
           "speech": args.speech, "knee_callers": knee(steps), "steps": steps}
    print(f"knee: {out['knee_callers']} callers (every turn answered, p95 <= "
          f"{P95_LIMIT_MS} ms)")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("load_ramp_heldout.json" if args.speech == "heldout" else "load_ramp.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    stamp(path, ["load_ramp", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
