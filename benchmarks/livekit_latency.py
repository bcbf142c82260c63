"""Calls through a LiveKit room: response latency, WebRTC on loopback over UDP and over TCP.

    python -m benchmarks.livekit_latency [--turns 12] [--variant udp --variant tcp]
                                         [--rtc KEY=VALUE ...] [--out PATH]

For each variant it starts a livekit-server (gateway/servers/livekit.py, built by
``make livekit``) and one ``voxgate livekit-worker`` with default settings (the front-desk
agents, as benchmarks/call_latency.py runs ``voxgate serve``), then places calls of four
turns with real speech (the Asterisk prompts), each turn spoken once the agent has been
quiet for 700 ms, from a caller on the ``livekit`` SDK (gateway/evaluation/livekit_caller.py):

* response latency: the caller's last voiced frame (RMS > 500) sent -> the first voiced
  frame of agent audio received, through the server both ways (Opus, jitter buffers);
* the worker's own view of the same turns (``turn.latency`` total_ms: the turn's last
  voiced frame as the session saw it -> its first reply audio handed to the transport),
  so the difference is what the room adds;
* join: the caller's connect -> the agent in the room, and -> the greeting heard.

Variants: ``udp`` (the tests' settings: ICE on the loopback interface only, node_ip
127.0.0.1, a UDP port range), ``tcp`` (the same with ``force_tcp``: ICE over the server's
TCP port only). ``--rtc`` overrides a server ``rtc`` setting in every variant (an empty
value drops it: ``--rtc interfaces=`` lets ICE use every interface). Each records the
candidate pair the caller's connections selected. Prints a table and writes
benchmarks/results/livekit_latency.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.evaluation.livekit_caller import Caller
from gateway.evaluation.speech import SHORT_PROMPTS, load_prompt
from gateway.servers.livekit import LiveKitServer, running

RESULTS = Path(__file__).parent / "results"
VARIANTS: dict[str, dict[str, str]] = {"udp": {}, "tcp": {"force_tcp": "true"}}
QUIET_S = 0.7  # the agent's silence before the caller's next turn


def start_worker(server: LiveKitServer, folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VOXGATE_DATA_DIR": str(folder / "data")}
    log = (folder / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "livekit-worker", "--url", server.url,
         "--api-key", server.api_key, "--api-secret", server.api_secret, "--capacity", "2",
         "--name", "bench"], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while "registered worker" not in (folder / "worker.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the worker did not register")
        time.sleep(0.2)
    return proc


async def agent_quiet(caller: Caller, since: float) -> None:
    """Until the agent has spoken after ``since`` and then been quiet for QUIET_S."""
    heard = caller.heard
    await caller.wait_for("the agent's answer", lambda: [t for t in heard.audible_at
                                                         if t > since], 60)
    while time.monotonic() - heard.audible_at[-1] < QUIET_S:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def one_call(server: LiveKitServer, prompts: list[bytes]) -> dict[str, Any]:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    caller = Caller(server.url, server.token(f"caller-{room}", room))
    started = time.monotonic()
    await caller.join()
    try:
        await caller.wait_for_agent(120)
        joined = time.monotonic() - started
        await agent_quiet(caller, started)
        greeted = caller.heard.audible_at[0] - started
        latencies = []
        for pcm in prompts:
            caller.say(pcm)
            await caller.wait_for("the turn sent", lambda: caller.spoke_until and not
                                  caller._speech, 30)
            spoke = caller.voiced_until
            await agent_quiet(caller, spoke)
            latencies.append(next(t for t in caller.heard.audible_at if t > spoke) - spoke)
        server_ms = [e["total_ms"] for e in caller.heard.of_type("turn.latency")]
        routes = await caller.routes()
    finally:
        await caller.leave()
    return {"join_s": joined, "greeting_s": greeted, "latencies_s": latencies,
            "server_ms": server_ms, "routes": routes}


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"n": len(values), "p50_ms": round(statistics.median(values) * 1000),
            "p90_ms": round(ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
                            * 1000),
            "min_ms": round(ordered[0] * 1000), "max_ms": round(ordered[-1] * 1000)}


def measure(variant: str, turns: int, rtc: dict[str, str] | None = None) -> dict[str, Any]:
    prompts = [load_prompt(name)[0] for name in SHORT_PROMPTS]
    calls: list[dict[str, Any]] = []
    settings = {**VARIANTS[variant], **(rtc or {})}
    with running(settings) as server, tempfile.TemporaryDirectory() as folder:
        worker = start_worker(server, Path(folder))
        try:
            i = 0
            while sum(len(c["latencies_s"]) for c in calls) < turns:
                calls.append(asyncio.run(one_call(server, prompts[i:i + 4])))
                i = (i + 4) % (len(prompts) - 4)
        finally:
            worker.terminate()
            worker.wait(60)
    latencies = [s for c in calls for s in c["latencies_s"]][:turns]
    server_s = [ms / 1000 for c in calls for ms in c["server_ms"]][:turns]
    return {"variant": variant, "rtc": settings, "calls": len(calls),
            "routes": sorted({r for c in calls for r in c["routes"]}),
            "response_latency": summary(latencies),
            "worker_turn_latency": summary(server_s),
            "join_to_agent": summary([c["join_s"] for c in calls]),
            "join_to_greeting": summary([c["greeting_s"] for c in calls])}


def main() -> None:
    from benchmarks.run_all import stamp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--rtc", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS / "livekit_latency.json")
    args = parser.parse_args()
    rtc = dict(item.split("=", 1) for item in args.rtc)
    report: dict[str, Any] = {"turns": args.turns, "variants": {}}
    for variant in args.variant or ["udp", "tcp"]:
        report["variants"][variant] = measure(variant, args.turns, rtc)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    stamp(out, ["livekit_latency", *sys.argv[1:]])
    print(f"{'variant':<8} {'metric':<22} {'n':>3} {'p50 ms':>7} {'p90 ms':>7}")
    for variant, data in report["variants"].items():
        for metric in ("response_latency", "worker_turn_latency", "join_to_agent",
                       "join_to_greeting"):
            row = data[metric]
            print(f"{variant:<8} {metric:<22} {row['n']:>3} {row['p50_ms']:>7} "
                  f"{row['p90_ms']:>7}")
        print(f"{variant:<8} ICE routes (caller side): {'; '.join(data['routes'])}")


if __name__ == "__main__":
    main()
