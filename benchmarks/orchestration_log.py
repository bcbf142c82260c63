"""Event log throughput: events appended per second on SQLite (WAL), batched and not.

    python -m benchmarks.orchestration_log [--events 100000] [--runs 5] [--backend postgresql]

Appends realistic call and workflow events (~120 bytes of JSON each, views kept in the
same transaction) in batches of 1000 and 100 and one at a time, and through
``attach_bus`` (bus emit -> writer thread -> log, until flushed). Prints medians over
``--runs`` runs and writes benchmarks/results/orchestration_log.json. Target: >= 20,000
events/s batched. ``--backend postgresql``: the same on a PostgreSQL server started for the
run (benchmarks/log_backends.py), written to orchestration_log_postgresql.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.log_backends import add_options, fresh_logs, results_name
from orchestration.log.backends import open_store
from orchestration.log.buslog import attach_bus
from orchestration.log.events import EventBus
from orchestration.log.store import NewEvent
from orchestration.log.views import project

RESULTS = Path(__file__).parent / "results"


def events(n: int) -> list[NewEvent]:
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(NewEvent(f"wf:w{i % 50}", "step.completed",
                                {"step": f"s{i % 7}", "tool": "crm.lookup",
                                 "output": {"ok": True, "score": i % 100}}))
        else:
            out.append(NewEvent(f"call:c{i % 200}", "turn.final",
                                {"text": "I would like to book an appointment", "audio_ms": 1840,
                                 "index": i}))
    return out


def append_rate(n: int, batch: int, fresh: Callable[[], str]) -> float:
    items = events(n)
    store = open_store(fresh(), project)
    start = time.perf_counter()
    for i in range(0, n, batch):
        store.append(items[i:i + batch])
    elapsed = time.perf_counter() - start
    assert store.last_seq() == n
    store.close()
    return n / elapsed


def bus_rate(n: int, fresh: Callable[[], str]) -> tuple[float, float]:
    """(events/s end to end, mean microseconds an emit costs the emitting thread)."""
    store = open_store(fresh(), project)
    bus = EventBus()
    sink = attach_bus(bus, store)
    start = time.perf_counter()
    for i in range(n):
        bus.emit(f"c{i % 200}", "turn.final", {"text": "book an appointment", "index": i})
    emitted = time.perf_counter() - start
    sink.flush(timeout=300)
    elapsed = time.perf_counter() - start
    sink.close()
    assert store.last_seq() == n
    store.close()
    return n / elapsed, emitted / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    add_options(parser)
    args = parser.parse_args()
    n, runs = args.events, args.runs
    result: dict[str, Any] = {"backend": args.backend, "events": n, "runs": runs}
    with fresh_logs(args) as fresh:
        for batch in (1000, 100):
            rates = [append_rate(n, batch, fresh) for _ in range(runs)]
            result[f"batch_{batch}_events_per_s"] = round(statistics.median(rates))
        single = [append_rate(min(n, 5000), 1, fresh) for _ in range(runs)]
        result["unbatched_events_per_s"] = round(statistics.median(single))
        bus = [bus_rate(n, fresh) for _ in range(runs)]
    result["attach_bus_events_per_s"] = round(statistics.median(r for r, _ in bus))
    result["attach_bus_emit_us"] = round(statistics.median(u for _, u in bus), 2)
    result["target_batched_events_per_s"] = 20_000
    result["meets_target"] = result["batch_1000_events_per_s"] >= 20_000
    for key, value in result.items():
        print(f"{key:32} {value}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / results_name("orchestration_log", args.backend)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
