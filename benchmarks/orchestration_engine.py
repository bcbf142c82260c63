"""Engine overhead per step, without I/O: a long sequential workflow of trivial tools on
the in-memory store, so what is timed is the engine (templates, validation, events,
views, transitions), not a disk or a tool.

    python -m benchmarks.orchestration_engine [--steps 200] [--runs 7] [--postgresql]

Prints the median microseconds per step (and the same on SQLite, for contrast, where
each step commits twice; with ``--postgresql`` also on a PostgreSQL server started for
the run, with run leases as replicas use them) and writes
benchmarks/results/orchestration_engine.json.
Target: <= 100 us per step without I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import EventStore, MemoryEventStore
from orchestration.log.views import project
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.engine import Engine
from orchestration.workflow.leases import Leases
from orchestration.workflow.loader import from_dict

RESULTS = Path(__file__).parent / "results"


class Num(BaseModel):
    x: int


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("inc")
    def inc(inp: Num) -> Num:
        return Num(x=inp.x + 1)

    return reg


def definition(steps: int) -> Any:
    states: dict[str, Any] = {
        f"s{i}": {"tool": "inc", "input": {"x": f"$steps.s{i - 1}.x" if i else 0},
                  "next": f"s{i + 1}" if i + 1 < steps else "done"}
        for i in range(steps)
    }
    states["done"] = {"kind": "end", "output": {"x": f"$steps.s{steps - 1}.x"}}
    return from_dict({"name": "bench", "start": "s0", "states": states})


async def per_step_us(store: EventStore, steps: int, runs: int,
                      leases: Leases | None = None) -> float:
    eng = Engine(store, registry(), [definition(steps)], rng=random.Random(0), leases=leases)
    await eng.start("bench")  # warm caches (expression parses, models)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        ident = await eng.start("bench")
        samples.append((time.perf_counter() - start) / steps * 1e6)
        assert eng.state(ident)["output"] == {"x": steps}
    return statistics.median(samples)


def postgres_per_step_us(steps: int, runs: int) -> float:
    from gateway.servers.postgres import running
    from orchestration.log.pg_store import PostgresEventStore
    from orchestration.workflow.pg_leases import RunLeases

    with running(durable=True) as server:
        store = PostgresEventStore(server.admin_url, project)
        leases = RunLeases(server.admin_url)
        try:
            return asyncio.run(per_step_us(store, steps, runs, leases))
        finally:
            leases.close()
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    memory = asyncio.run(per_step_us(MemoryEventStore(project), args.steps, args.runs))
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteEventStore(Path(tmp) / "log.db", project)
        on_disk = asyncio.run(per_step_us(sqlite, args.steps, args.runs))
        sqlite.close()
    result = {"steps": args.steps, "runs": args.runs,
              "us_per_step_no_io": round(memory, 1), "us_per_step_sqlite": round(on_disk, 1),
              "target_us_per_step": 100, "meets_target": memory <= 100}
    if args.postgresql:
        result["us_per_step_postgresql"] = round(postgres_per_step_us(args.steps, args.runs), 1)
    for key, value in result.items():
        print(f"{key:22} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "orchestration_engine.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
