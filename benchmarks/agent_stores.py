"""The agents' stores, SQLite against PostgreSQL: long-term memory (writes, full-text
search, the newest items) and bookings, on the same data, back to back.

    python -m benchmarks.agent_stores [--memories 1000] [--queries 300] [--bookings 300]
                                      [--embeddings] [--database-url URL]

One caller with ``--memories`` notes (sentences from a 200-word vocabulary); then
``--queries`` searches of two or three of those words, and as many reads of the caller's
ten newest items; then ``--bookings`` bookings with an idempotency key, each released
again. ``--embeddings``: the same searches by meaning (all-MiniLM-L6-v2, vectors ranked in
numpy on both backends). PostgreSQL is a server started for the run with its durable
defaults (fsync at every commit, as ``benchmarks/log_backends.py``), or ``--database-url``'s.
Prints milliseconds per operation (median and p95) and writes
benchmarks/results/agent_stores.json, stamped with the commit, machine and command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.run_all import provenance
from gateway.servers.postgres import running
from memory.pg_store import PostgresMemoryStore
from memory.store import Encoder, LongTermMemory, MemoryStore
from orchestration.agents.scheduling import Calendar
from orchestration.log.tables import open_tables

RESULTS = Path(__file__).parent / "results"
CALLER = "+15550100001"


def vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(200)]


def notes(n: int, words: list[str], rng: random.Random) -> list[str]:
    frames = ["Call {} about the {} on {}", "The {} moved the {} to {}",
              "Remember to send {} the {} and the {}", "{} prefers {} for the {}"]
    return [rng.choice(frames).format(*rng.sample(words, 3)) for _ in range(n)]


def figures(samples: list[float]) -> dict[str, float]:
    """Milliseconds: median and p95 of seconds measured per operation."""
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3)}


def timed(calls: list[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def memory_figures(store: LongTermMemory, texts: list[str], queries: list[str]
                   ) -> dict[str, Any]:
    adds = timed([lambda t=t: store.add(CALLER, "note", t) for t in texts])  # type: ignore[misc]
    found = [len(store.search(CALLER, q, limit=5)) for q in queries[:20]]
    assert any(found), "the searches found nothing"
    search = timed([lambda q=q: store.search(CALLER, q, limit=5)  # type: ignore[misc]
                    for q in queries])
    recent = timed([lambda: store.items(CALLER, "note", limit=10) for _ in queries])
    return {"add": figures(adds), "search": figures(search), "newest_10": figures(recent)}


def booking_figures(location: str, n: int) -> dict[str, Any]:
    tables = open_tables(location)
    cal = Calendar(tables)
    days = [f"2030-01-{d:02d}" for d in (7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 21, 22)]
    slots = [(d, f"{h:02d}:{m:02d}") for d in days for h in range(9, 17) for m in (0, 30)]

    def book_and_release(i: int) -> None:
        day, hhmm = slots[i % len(slots)]
        ident = cal.book(day, hhmm, CALLER, None, time.time(), key=f"bench/{i}")
        cal.set_status(ident, "released")

    samples = timed([lambda i=i: book_and_release(i) for i in range(n)])  # type: ignore[misc]
    tables.close()
    return {"book_and_release": figures(samples)}


@contextlib.contextmanager
def databases(url: str | None) -> Iterator[Callable[[str], str]]:
    """A function giving the URL of a new database by name, on ``url``'s server or one
    started here (durable defaults)."""
    with contextlib.ExitStack() as stack:
        admin = url or stack.enter_context(running(durable=True)).admin_url

        def new(name: str) -> str:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())
                conn.execute(f'CREATE DATABASE "{name}"'.encode())
            return admin.rsplit("/", 1)[0] + "/" + name

        yield new


def run(args: argparse.Namespace, encoder: Encoder | None) -> dict[str, Any]:
    rng = random.Random(7)
    words = vocabulary(rng)
    texts = notes(args.memories, words, rng)
    queries = [" ".join(rng.sample(words, rng.randint(2, 3))) for _ in range(args.queries)]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, databases(args.database_url) as new:
        for backend in ("sqlite", "postgresql"):
            lite = backend == "sqlite"
            at = str(Path(tmp) / "memory.db") if lite else new("bench_memory")
            store: LongTermMemory = (MemoryStore(at) if lite else PostgresMemoryStore(at))
            out[backend] = {"memory": memory_figures(store, texts, queries)}
            store.close()
            if encoder is not None:
                at = str(Path(tmp) / "vectors.db") if lite else new("bench_vectors")
                vec: LongTermMemory = (MemoryStore(at, encoder) if lite
                                       else PostgresMemoryStore(at, encoder))
                out[backend]["embeddings"] = memory_figures(vec, texts, queries)
                vec.close()
            at = str(Path(tmp) / "agents.db") if lite else new("bench_agents")
            out[backend].update(booking_figures(at, args.bookings))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--bookings", type=int, default=300)
    parser.add_argument("--embeddings", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    encoder = None
    if args.embeddings:
        from memory.embeddings import MiniLmEncoder

        encoder = MiniLmEncoder()
    measured = run(args, encoder)
    # stamped after the run, as run_all does: the load average is the run's
    result = {"provenance": provenance(["agent_stores", *sys.argv[1:]]),
              "memories": args.memories, "queries": args.queries, "bookings": args.bookings,
              **measured}
    for backend in ("sqlite", "postgresql"):
        for group, ops in result[backend].items():
            for op, fig in (ops.items() if "p50_ms" not in ops else [("", ops)]):
                print(f"{backend:10} {group:17} {op:10} p50 {fig['p50_ms']:8.3f} ms  "
                      f"p95 {fig['p95_ms']:8.3f} ms")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent_stores.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
