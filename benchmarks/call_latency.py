"""Whole-call latency over both protocols, with real speech streamed in real time.

    python -m benchmarks.call_latency [--turns 12] [--protocol twilio --protocol browser]

Starts `voxgate serve` as a subprocess on a loopback port (default settings), then places
scripted calls with the real-time caller in gateway/evaluation/client.py:

* response latency: the last voiced frame the caller sent -> the first agent audio frame
  it received, per turn;
* barge-in latency: the first voiced frame sent while agent audio was playing -> `clear`
  received, and -> the caller's playback stopped;
* the server's CPU seconds per call minute and its resident memory per live session.

Prints a table and writes benchmarks/results/call_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.speech import SHORT_PROMPTS, load_prompt
from gateway.servers.ports import free_port

RESULTS = Path(__file__).parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")



class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "VOXGATE_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000),
        "p90_ms": round(pct(values, 0.9) * 1000),
        "min_ms": round(min(values) * 1000),
        "max_ms": round(max(values) * 1000),
    }


# the server's own view of each answered turn (``turn.latency``): total = the turn's last
# voiced frame -> its first sentence sent; stt = the transcript's compute; tts = the first
# sentence's synthesis (0 when it came from the phrase cache)
SERVER_PARTS: dict[str, list[float]] = {"total_ms": [], "stt_ms": [], "tts_ms": []}


async def response_calls(url: str, protocol: str, turns: int) -> tuple[list[float], float]:
    """Calls of four polite turns each; returns latencies and total call seconds."""
    latencies: list[float] = []
    call_s = 0.0
    for values in SERVER_PARTS.values():
        values.clear()
    prompts = [load_prompt(name)[0] for name in SHORT_PROMPTS]
    i = 0
    while len(latencies) < turns:
        script = [
            Segment(prompts[(i + k) % len(prompts)], after_agent_quiet_ms=700) for k in range(4)
        ]
        i += 4
        result = await run_call(None, protocol, url, script=script, tail_s=5.0)  # type: ignore[arg-type]
        call_s += result.duration_s
        for event in result.events_of("turn.latency"):
            for part, values in SERVER_PARTS.items():
                values.append(float(event.event.data.get(part, 0.0)) / 1000)
        for item in result.response_latencies():
            if item.latency_s is not None:
                latencies.append(item.latency_s)
    return latencies[:turns], call_s


async def barge_calls(url: str, protocol: str, turns: int) -> tuple[list[float], list[float]]:
    clears: list[float] = []
    stops: list[float] = []
    long_prompt, _ = load_prompt("vm-enter-num-to-call")
    while len(clears) < turns:
        script = [Segment(long_prompt, after_agent_audio_ms=900) for _ in range(4)]
        result: CallResult = await run_call(None, protocol, url, script=script, tail_s=4.0)  # type: ignore[arg-type]
        for barge in result.barge_ins():
            if barge.clear_latency_s is not None:
                clears.append(barge.clear_latency_s)
            if barge.stop_latency_s is not None:
                stops.append(barge.stop_latency_s)
    return clears[:turns], stops[:turns]


async def memory_per_session(server: Server, sessions: int = 8) -> dict[str, float]:
    """Peak resident memory while ``sessions`` calls are live, against the idle server."""
    idle = server.rss_mb()
    pcm, _ = load_prompt("conf-locked")
    calls = [
        asyncio.create_task(run_call(pcm, "browser", server.url, tail_s=3.0))
        for _ in range(sessions)
    ]
    peak = idle
    while not all(call.done() for call in calls):
        peak = max(peak, server.rss_mb())
        await asyncio.sleep(0.2)
    await asyncio.gather(*calls)
    return {
        "sessions": sessions,
        "idle_rss_mb": round(idle, 1),
        "peak_rss_mb": round(peak, 1),
        "mb_per_session": round(max(0.0, peak - idle) / sessions, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--protocol", action="append", choices=["twilio", "browser"])
    args = parser.parse_args()
    protocols = args.protocol or ["twilio", "browser"]
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data))
        try:
            report: dict[str, Any] = {"turns": args.turns, "protocols": {}}
            for protocol in protocols:
                cpu0 = server.cpu_s()
                latencies, call_s = asyncio.run(response_calls(server.url, protocol, args.turns))
                cpu_per_min = (server.cpu_s() - cpu0) / (call_s / 60) if call_s else 0.0
                clears, stops = asyncio.run(barge_calls(server.url, protocol, args.turns // 2))
                report["protocols"][protocol] = {
                    "response_latency": summary(latencies),
                    "barge_in_clear": summary(clears),
                    "barge_in_stop": summary(stops),
                    "server_cpu_s_per_call_minute": round(cpu_per_min, 1),
                    "server_turn_latency": {part: summary(values)
                                            for part, values in SERVER_PARTS.items()},
                }
            report["memory"] = asyncio.run(memory_per_session(server))
        finally:
            server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "call_latency.json").write_text(json.dumps(report, indent=2))
    print(f"{'protocol':<9} {'metric':<22} {'n':>3} {'p50 ms':>7} {'p90 ms':>7}")
    for protocol, data in report["protocols"].items():
        for metric in ("response_latency", "barge_in_clear", "barge_in_stop"):
            row = data[metric]
            print(
                f"{protocol:<9} {metric:<22} {row['n']:>3} {row.get('p50_ms', '-'):>7} "
                f"{row.get('p90_ms', '-'):>7}"
            )
        for part, row in data["server_turn_latency"].items():
            print(f"{protocol:<9} {'server ' + part:<22} {row['n']:>3} "
                  f"{row.get('p50_ms', '-'):>7} {row.get('p90_ms', '-'):>7}")
        print(f"{protocol:<9} cpu s per call minute: {data['server_cpu_s_per_call_minute']}")
    mem = report["memory"]
    print(
        f"memory: idle {mem['idle_rss_mb']} MB, peak {mem['peak_rss_mb']} MB with "
        f"{mem['sessions']} calls = {mem['mb_per_session']} MB per session"
    )


if __name__ == "__main__":
    main()
