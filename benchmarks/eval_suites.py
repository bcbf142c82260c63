"""The evaluation suites as a benchmark: accuracy, consistency, latency and cost per tier.

    python -m benchmarks.eval_suites [--variant clean ...] [--repeat N] [SUITE ...]

Runs ``evals/*.yaml`` (default: every suite, each with its own variants and repeats)
exactly as ``voxgate eval`` does -- real-time calls through the real audio path against
a gateway started in this process, workflows on a real orchestrator -- prints the same
summary and writes the full report to benchmarks/results/eval_suites.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway.cli.evaluate import print_summary
from gateway.evaluation.load import load_suites
from gateway.evaluation.report import RunRecord, summarize
from gateway.evaluation.run import Job, Options, evaluate, machine

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """A few figures for benchmarks.run_all's table: voice accuracy over every variant,
    the real-time tier's latency and CPU, and the workflow runs' outcome."""
    voice = {s["suite"] for s in report["suites"] if s["kind"] == "voice"}
    runs = [r for r in report["runs"] if r["suite"] in voice]
    flows = [r for r in report["runs"] if r["suite"] not in voice]
    words = sum(r["wer_words"] for r in runs)
    intents = sum(r["intents_expected"] for r in runs)
    out: dict[str, Any] = {
        "ok": report["ok"],
        "voice_runs_ok": f"{sum(r['ok'] for r in runs)}/{len(runs)}",
        "voice_wer": round(sum(r["wer_errors"] for r in runs) / words, 4) if words else None,
        "voice_intent_accuracy": round(sum(r["intents_correct"] for r in runs) / intents, 4)
        if intents else None,
        "workflow_runs_ok": f"{sum(r['ok'] for r in flows)}/{len(flows)}" if flows else None,
    }
    for tier in report["tiers"]:
        if tier["tier"] == "realtime":
            out.update(realtime_p50_ms=tier["latency_p50_ms"],
                       realtime_p95_ms=tier["latency_p95_ms"],
                       realtime_cpu_s_per_call=tier["cpu_s_per_call"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suites", nargs="*", type=Path, default=[ROOT / "evals"])
    parser.add_argument("--variant", action="append", help="instead of the suites' variants")
    parser.add_argument("--repeat", type=int, help="instead of the suites' repeat")
    args = parser.parse_args()
    suites = load_suites(args.suites)
    options = Options(variants=args.variant, repeat=args.repeat)
    started, load = time.monotonic(), machine()

    def progress(job: Job, record: RunRecord) -> None:
        print(f"  {job.label}: {'ok' if record.ok else 'FAILED ' + '; '.join(record.problems())}",
              flush=True)

    records = asyncio.run(evaluate(suites, options, progress))
    report = summarize(suites, records, {
        "mode": "gateway in this process", "started": load, "ended": machine(),
        "duration_s": round(time.monotonic() - started, 1),
        "suites": [str(s.source) for s in suites], "variants": args.variant,
        "repeat": args.repeat})
    report["headline"] = headline(report)
    print_summary(report, Console(width=120))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_suites.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {RESULTS / 'eval_suites.json'}")


if __name__ == "__main__":
    main()
