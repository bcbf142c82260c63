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

from rich.console import Console

from gateway.eval_cli import print_summary
from gateway.eval_run import Job, Options, evaluate, machine
from orchestration.eval_report import RunRecord, summarize
from orchestration.eval_scenario import load_suites

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"


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
        "mode": "in-process (thread)", "started": load, "ended": machine(),
        "duration_s": round(time.monotonic() - started, 1),
        "suites": [str(s.source) for s in suites], "variants": args.variant,
        "repeat": args.repeat})
    print_summary(report, Console(width=120))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_suites.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {RESULTS / 'eval_suites.json'}")


if __name__ == "__main__":
    main()
