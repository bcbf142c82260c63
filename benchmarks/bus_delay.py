"""Cross-node event delay and throughput on Redis pub/sub and NATS core, the two candidates
for the live bus between gateway nodes (docs/deployment.md, "The live bus").

    python -m benchmarks.bus_delay [--events 2000] [--rate 500] [--burst 50000] [--runs 3]

For each server (Debian's ``redis-server`` and ``nats-server``, started here on a free
loopback port in a temporary folder) a subscriber runs in a second process -- the other
node -- and a publisher in this one sends call events of the bus's shape (~250 bytes of
JSON, as ``gateway/cluster_bus.py`` sends them):

- delay: ``--events`` events one at a time at ``--rate`` per second, each stamped with
  ``time.time()`` when it was handed to the client; the subscriber records receive time
  minus that stamp (one machine, one clock). p50/p95/p99/max in ms.
- throughput: ``--burst`` events as fast as the client takes them (published in batches
  of 100: a Redis pipeline, NATS's buffered publish and a flush), until the subscriber has
  every one; events/s from the first publish to the last receipt, and how many were lost.

Each is measured ``--runs`` times, Redis and NATS in turn; the figures are the medians
over the runs. Then the same delay through voxgate's own bridge on NATS, the backend the
gateway uses (``ClusterBus``: emit on node A's ``EventBus`` -> the server -> node B's views;
benchmarks/bus_bridge.py), and what an emit costs the emitting thread.
Writes benchmarks/results/bus_delay.json, stamped with its provenance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from benchmarks.run_all import stamp

RESULTS = Path(__file__).parent / "results"
SUBJECT = "voxgate.events"
BATCH = 100


def payload(i: int, sent: float) -> bytes:
    event = {"node": "node-a", "seq": i, "ts": sent, "session_id": "3f9c2a7d5e1b4c80",
             "type": "stt.final", "data": {"text": "I would like to book an appointment",
                                           "audio_ms": 1840, "confidence": 0.93,
                                           "sent": sent}}
    return json.dumps(event, separators=(",", ":")).encode()


# --- the two clients, behind one small interface --------------------------------------

class Client:
    async def connect(self, url: str) -> None: ...
    async def subscribe(self) -> None: ...
    def messages(self) -> AsyncIterator[bytes]:
        raise NotImplementedError
    async def publish(self, batch: list[bytes]) -> None: ...
    async def close(self) -> None: ...


class RedisClient(Client):
    async def connect(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.conn = aioredis.Redis.from_url(url)
        self.pubsub = self.conn.pubsub(ignore_subscribe_messages=True)

    async def subscribe(self) -> None:
        await self.pubsub.subscribe(SUBJECT)

    async def messages(self) -> AsyncIterator[bytes]:
        async for message in self.pubsub.listen():
            if message["type"] == "message":
                yield message["data"]

    async def publish(self, batch: list[bytes]) -> None:
        if len(batch) == 1:
            await self.conn.publish(SUBJECT, batch[0])
            return
        async with self.conn.pipeline(transaction=False) as pipe:
            for item in batch:
                pipe.publish(SUBJECT, item)
            await pipe.execute()

    async def close(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.conn.aclose()


class NatsClient(Client):
    async def connect(self, url: str) -> None:
        import nats

        self.conn = await nats.connect(url)
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def subscribe(self) -> None:
        async def on_message(msg: Any) -> None:
            self.queue.put_nowait(msg.data)

        await self.conn.subscribe(SUBJECT, cb=on_message)
        await self.conn.flush()

    async def messages(self) -> AsyncIterator[bytes]:
        while True:
            yield await self.queue.get()

    async def publish(self, batch: list[bytes]) -> None:
        for item in batch:
            await self.conn.publish(SUBJECT, item)
        await self.conn.flush()

    async def close(self) -> None:
        await self.conn.drain()


def client(kind: str) -> Client:
    return RedisClient() if kind == "redis" else NatsClient()


# --- the subscriber: the other node, in its own process ---------------------------------

async def subscribe(kind: str, url: str, expect: int) -> dict[str, Any]:
    c = client(kind)
    await c.connect(url)
    await c.subscribe()
    print("ready", flush=True)
    delays: list[float] = []
    first = last = 0.0
    async for data in c.messages():
        now = time.time()
        sent = json.loads(data)["data"]["sent"]
        first = first or sent
        last = now
        delays.append((now - sent) * 1000)
        if len(delays) >= expect:
            break
    await c.close()
    return {"received": len(delays), "first_sent": first, "last_received": last,
            "delays_ms": delays}


def _subscriber_main(kind: str, url: str, expect: int) -> None:
    print(json.dumps(asyncio.run(subscribe(kind, url, expect))), flush=True)


@contextlib.contextmanager
def other_node(kind: str, url: str, expect: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bus_delay", "--subscriber",
                             kind, url, str(expect)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {kind} subscriber did not start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _finish(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return found


# --- the publisher ----------------------------------------------------------------------

async def publish_paced(kind: str, url: str, n: int, rate: float) -> None:
    c = client(kind)
    await c.connect(url)
    start = time.perf_counter()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await c.publish([payload(i, time.time())])
    await c.close()


async def publish_burst(kind: str, url: str, n: int) -> None:
    c = client(kind)
    await c.connect(url)
    for i in range(0, n, BATCH):
        now = time.time()
        await c.publish([payload(j, now) for j in range(i, min(n, i + BATCH))])
    await c.close()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": round(q[49], 3), "p95_ms": round(q[94], 3), "p99_ms": round(q[98], 3),
            "max_ms": round(max(values), 3)}


def measure(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    with other_node(kind, url, args.events) as proc:
        asyncio.run(publish_paced(kind, url, args.events, args.rate))
        paced = _finish(proc, 30)
    with other_node(kind, url, args.burst) as proc:
        started = time.time()
        asyncio.run(publish_burst(kind, url, args.burst))
        published = time.time() - started
        burst = _finish(proc, 120)
    received = int(burst.get("received", 0))
    span = float(burst.get("last_received", 0.0)) - float(burst.get("first_sent", 0.0))
    return {
        "delay": {"events": args.events, "rate_per_s": args.rate,
                  "received": paced.get("received", 0), **percentiles(paced.get("delays_ms", []))},
        "throughput": {"events": args.burst, "received": received,
                       "lost": args.burst - received,
                       "events_per_s": round(received / span) if span > 0 else None,
                       "publish_s": round(published, 3)},
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (the runs themselves are kept beside it)."""
    out: dict[str, Any] = {}
    for part in ("delay", "throughput"):
        keys = [k for k, v in runs[0][part].items() if isinstance(v, int | float)]
        out[part] = {k: statistics.median(r[part][k] for r in runs if r[part].get(k) is not None)
                     for k in keys}
    return out


def compare(args: argparse.Namespace, *servers: Any) -> dict[str, Any]:
    """Redis and NATS, ``--runs`` rounds, one of each per round (the machine's load then
    weighs on both alike)."""
    runs: dict[str, list[dict[str, Any]]] = {"redis": [], "nats": []}
    versions: dict[str, str] = {}
    for _ in range(args.runs):
        for kind, start in zip(("redis", "nats"), servers, strict=True):
            with start() as server:
                runs[kind].append(measure(kind, server.url, args))
                versions[kind] = server.version
    return {kind: {**median_of(runs[kind]), "server": versions[kind], "runs": runs[kind]}
            for kind in runs}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        _subscriber_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    from benchmarks.bus_bridge import bridge_delay, node_b
    from gateway.servers.bus import nats_server, redis_server

    if len(sys.argv) > 1 and sys.argv[1] == "--bridge-subscriber":
        node_b(sys.argv[2], int(sys.argv[3]))
        return

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = compare(args, redis_server, nats_server)
    with nats_server() as server:
        result["bridge"] = bridge_delay(server.url, args.events, args.rate)
    for kind in ("redis", "nats"):
        d, t = result[kind]["delay"], result[kind]["throughput"]
        print(f"{kind:6} delay p50 {d.get('p50_ms')} ms  p95 {d.get('p95_ms')} ms  "
              f"p99 {d.get('p99_ms')} ms   throughput {t['events_per_s']} events/s "
              f"(lost {t['lost']})")
    b = result["bridge"]
    print(f"bridge (nats) emit on A -> B's views: p50 {b.get('p50_ms')} ms  "
          f"p95 {b.get('p95_ms')} ms; an emit costs {b['emit_us_mean']} us "
          f"({b['emit_us_no_bridge']} us with no bridge, {b['emit_us_bus_down']} us with the "
          "bus down)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bus_delay.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    stamp(out, ["bus_delay", *sys.argv[1:]])


if __name__ == "__main__":
    main()
