"""Replay speed: events per second folded into views from the SQLite log.

    python -m benchmarks.orchestration_replay [--events 200000] [--runs 5] [--backend postgresql]

Builds a log of call and workflow events (the mix the gateway writes), then times
``rebuild`` (read every event, verify its checksum, decode it, project it) and the full
``replay`` check against the stored views. Prints medians and writes
benchmarks/results/orchestration_replay.json (``_postgresql.json`` with ``--backend
postgresql``, a server started for the run). Target: >= 100,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.log_backends import add_options, fresh_logs, results_name
from benchmarks.orchestration_log import events
from orchestration.log.backends import open_store
from orchestration.log.replay import rebuild, replay
from orchestration.log.views import project

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
    n = args.events
    result: dict[str, Any] = {"backend": args.backend, "events": n, "runs": args.runs}
    with fresh_logs(args) as fresh:
        store = open_store(fresh(), project)
        items = events(n)
        for i in range(0, n, 1000):
            store.append(items[i:i + 1000])
        rebuild_rates, check_rates = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            _, count = rebuild(store)
            rebuild_rates.append(count / (time.perf_counter() - start))
            start = time.perf_counter()
            report = replay(store)
            check_rates.append(report.events / (time.perf_counter() - start))
            assert report.ok
        store.close()
    result["rebuild_events_per_s"] = round(statistics.median(rebuild_rates))
    result["replay_check_events_per_s"] = round(statistics.median(check_rates))
    result["target_events_per_s"] = 100_000
    result["meets_target"] = result["rebuild_events_per_s"] >= 100_000
    for key, value in result.items():
        print(f"{key:28} {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / results_name("orchestration_replay", args.backend)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
