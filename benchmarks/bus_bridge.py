"""Cross-node delay through voxgate's own bridge (``gateway.cluster.bridge.ClusterBus``):
an event emitted on node A's ``EventBus`` until node B's live views have it (B runs in a
second process; one machine, one clock, so B subtracts the event's own ``ts``). Also what
an emit costs the emitting thread with the bus up and with no server at all (it must not
wait for the bus). Used by ``benchmarks/bus_delay.py``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from gateway.cluster.bridge import Backoff, ClusterBus
from orchestration.log.events import Event, EventBus

DATA = {"text": "I would like to book an appointment", "audio_ms": 1840, "confidence": 0.93}


def node_b(url: str, expect: int) -> None:
    """The other node: print "ready" once it hears node A, then the delays as JSON."""
    bus = EventBus()
    delays: list[float] = []
    done = threading.Event()

    def on_event(event: Event) -> None:
        if event.node == "node-a" and event.session_id == "bench":
            delays.append((time.time() - event.ts) * 1000)
            if len(delays) >= expect:
                done.set()

    bus.subscribe(on_event, remote=True)
    cluster = ClusterBus(bus, url, "node-b", beat_s=0.2)
    cluster.start()
    while not any(p["node"] == "node-a" for p in cluster.peers.describe()):
        time.sleep(0.02)
    print("ready", flush=True)
    done.wait(120)
    cluster.stop()
    print(json.dumps({"received": len(delays), "delays_ms": delays}), flush=True)


def _emit_paced(bus: EventBus, n: int, rate: float) -> list[float]:
    costs: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        t0 = time.perf_counter()
        bus.emit("bench", "stt.final", {**DATA, "i": i})
        costs.append((time.perf_counter() - t0) * 1e6)
    return costs


def emit_cost_down(n: int = 20_000) -> float:
    """Mean microseconds per emit with the bridge down (nothing listens on the port)."""
    bus = EventBus()
    cluster = ClusterBus(bus, "nats://127.0.0.1:9", "node-a", backoff=Backoff(0.05, 0.1))
    cluster.start()
    while cluster.status != "down":
        time.sleep(0.01)
    t0 = time.perf_counter()
    for i in range(n):
        bus.emit("bench", "stt.final", {**DATA, "i": i})
    cost = (time.perf_counter() - t0) / n * 1e6
    cluster.stop()
    return cost


def bridge_delay(url: str, n: int, rate: float) -> dict[str, Any]:
    from benchmarks.bus_delay import percentiles

    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bus_delay",
                             "--bridge-subscriber", url, str(n)],
                            stdout=subprocess.PIPE, text=True)
    bus = EventBus()
    plain = EventBus()
    cluster = ClusterBus(bus, url, "node-a", beat_s=0.2)
    cluster.start()
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("node B did not start")
        costs = _emit_paced(bus, n, rate)
        out, _ = proc.communicate(timeout=120)
    finally:
        cluster.stop()
        if proc.poll() is None:
            proc.kill()
    got = json.loads(out.strip().splitlines()[-1])
    alone = _emit_paced(plain, min(n, 2000), rate * 10)
    return {"events": n, "rate_per_s": rate, "received": got["received"],
            **percentiles(got["delays_ms"]),
            "emit_us_mean": round(statistics.fmean(costs), 2),
            "emit_us_no_bridge": round(statistics.fmean(alone), 2),
            "emit_us_bus_down": round(emit_cost_down(), 2)}
