"""Whole-call latency over both protocols, with real speech streamed in real time.

    python -m benchmarks.call_latency [--turns 12] [--protocol twilio --protocol browser]
        [--speech asterisk|heldout|dev] [--out call_latency.json]

Starts `voxgate serve` as a subprocess on a loopback port (default settings), then places
scripted calls with the real-time caller in gateway/evaluation/client.py:

* response latency: the last voiced frame the caller sent -> the first agent audio frame
  it received, per turn;
* barge-in latency: the first voiced frame sent while agent audio was playing -> `clear`
  received, and -> the caller's playback stopped;
* the server's CPU seconds per call minute and its resident memory per live session;
* where each answered turn's time went, from the server's own events of the finished call
  (``GET /api/sessions/{id}/events``): the silence before the turn ended
  (``vad.speech_stopped`` silence_ms), the wait for the transcript after it (``stt.final``
  wait_ms), and the rest up to the first sentence sent (agent and first TTS chunk:
  ``turn.latency`` total_ms less the two), beside the client's response for the same turns.

The polite turns are the Asterisk prompts (``--speech asterisk``, the default), the
held-out caller (``--speech heldout``: benchmarks/data/heldout_caller/, calls to the demo
agents in voices no tuning heard) or the development caller in the same style (``--speech
dev``: benchmarks/data/dev_caller/, the one to tune on); the barge-in turns are an
Asterisk prompt either way. Prints a table and writes benchmarks/results/call_latency.json
(call_latency_<speech>.json for a caller set; ``--out`` names another file).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.dev_caller import calls as dev_calls
from benchmarks.heldout_caller import calls as heldout_calls
from benchmarks.run_all import stamp
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
        "p95_ms": round(pct(values, 0.95) * 1000),
        "min_ms": round(min(values) * 1000),
        "max_ms": round(max(values) * 1000),
    }


# the server's own view of each answered turn (``turn.latency``): total = the turn's last
# voiced frame -> its first sentence sent; stt = the transcript's compute; tts = the first
# sentence's synthesis (0 when it came from the phrase cache)
SERVER_PARTS: dict[str, list[float]] = {"total_ms": [], "stt_ms": [], "tts_ms": []}


CALLERS = {"heldout": heldout_calls, "dev": dev_calls}
# where an answered turn's time went on the server (``turn_parts``), in seconds
BREAKDOWN: dict[str, list[float]] = {
    "end_of_turn_silence_ms": [], "stt_wait_ms": [], "agent_tts_first_chunk_ms": [],
    "server_total_ms": []}


def polite_scripts(speech: str) -> Iterator[list[bytes]]:
    """Endless calls of polite turns: four Asterisk prompts each, rotating, or the held-out
    or development caller's calls (benchmarks/heldout_caller.py, dev_caller.py) one after
    the other."""
    if speech in CALLERS:
        yield from itertools.cycle([[t.pcm for t in call] for call in CALLERS[speech]()])
    prompts = [load_prompt(name)[0] for name in SHORT_PROMPTS]
    for i in itertools.count(0, 4):
        yield [prompts[(i + k) % len(prompts)] for k in range(4)]


def turn_parts(events: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Each answered turn of a finished call, from the server's events in order: the
    silence the turn-taking waited (the last ``vad.speech_stopped`` before the turn's
    ``stt.final``), the wait for the transcript after that (``stt.final`` wait_ms), and the
    rest of ``turn.latency`` total_ms (the caller's last voiced frame -> the first sentence
    sent): the agent's answer and the first TTS chunk."""
    parts: list[dict[str, float]] = []
    silence: float | None = None
    wait: float | None = None
    for event in events:
        kind, data = event["type"], event.get("data") or {}
        if kind == "vad.speech_stopped":
            silence = float(data["silence_ms"])
        elif kind == "stt.final":
            wait = float(data["wait_ms"])
        elif kind == "turn.latency" and silence is not None and wait is not None:
            total = float(data["total_ms"])
            parts.append({"end_of_turn_silence_ms": silence, "stt_wait_ms": wait,
                          "agent_tts_first_chunk_ms": total - silence - wait,
                          "server_total_ms": total})
            silence = wait = None
    return parts


async def server_turns(url: str, session_id: str | None) -> list[dict[str, float]]:
    if session_id is None:
        return []
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.get(f"{url}/api/sessions/{session_id}/events")
        resp.raise_for_status()
        return turn_parts(resp.json())


async def response_calls(url: str, protocol: str, turns: int,
                         speech: str) -> tuple[list[float], float]:
    """Calls of polite turns; returns latencies and total call seconds."""
    latencies: list[float] = []
    call_s = 0.0
    for values in (*SERVER_PARTS.values(), *BREAKDOWN.values()):
        values.clear()
    scripts = polite_scripts(speech)
    while len(latencies) < turns:
        script = [Segment(pcm, after_agent_quiet_ms=700) for pcm in next(scripts)]
        result = await run_call(None, protocol, url, script=script, tail_s=5.0)  # type: ignore[arg-type]
        call_s += result.duration_s
        for event in result.events_of("turn.latency"):
            for part, values in SERVER_PARTS.items():
                values.append(float(event.event.data.get(part, 0.0)) / 1000)
        for turn in await server_turns(url, result.session_id):
            for part, values in BREAKDOWN.items():
                values.append(turn[part] / 1000)
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


def measure(server: Server, protocol: str, turns: int, speech: str) -> dict[str, Any]:
    cpu0 = server.cpu_s()
    latencies, call_s = asyncio.run(response_calls(server.url, protocol, turns, speech))
    cpu_per_min = (server.cpu_s() - cpu0) / (call_s / 60) if call_s else 0.0
    clears, stops = asyncio.run(barge_calls(server.url, protocol, turns // 2))
    return {
        "response_latency": summary(latencies),
        "barge_in_clear": summary(clears),
        "barge_in_stop": summary(stops),
        "server_cpu_s_per_call_minute": round(cpu_per_min, 1),
        "server_turn_latency": {part: summary(values) for part, values in SERVER_PARTS.items()},
        # the same calls' answered turns, read back from the server (GET .../events)
        "turn_breakdown": {part: summary(values) for part, values in BREAKDOWN.items()},
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"{'protocol':<9} {'metric':<30} {'n':>3} {'p50 ms':>7} {'p90 ms':>7} {'p95 ms':>7}")
    for protocol, data in report["protocols"].items():
        rows = [(m, data[m]) for m in ("response_latency", "barge_in_clear", "barge_in_stop")]
        rows += [("server " + part, row) for part, row in data["server_turn_latency"].items()]
        rows += [("turn: " + part, row) for part, row in data["turn_breakdown"].items()]
        for metric, row in rows:
            print(f"{protocol:<9} {metric:<30} {row['n']:>3} {row.get('p50_ms', '-'):>7} "
                  f"{row.get('p90_ms', '-'):>7} {row.get('p95_ms', '-'):>7}")
        print(f"{protocol:<9} cpu s per call minute: {data['server_cpu_s_per_call_minute']}")
    mem = report["memory"]
    print(
        f"memory: idle {mem['idle_rss_mb']} MB, peak {mem['peak_rss_mb']} MB with "
        f"{mem['sessions']} calls = {mem['mb_per_session']} MB per session"
    )
    print(f"load average: {report['loadavg_start']} at start, {report['loadavg_end']} at end")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--protocol", action="append", choices=["twilio", "browser"])
    parser.add_argument("--speech", choices=["asterisk", *CALLERS], default="asterisk",
                        help="the polite turns: Asterisk prompts, the held-out caller, or "
                             "the development caller (tune on this one)")
    parser.add_argument("--out", help="result file name in benchmarks/results/")
    args = parser.parse_args(argv)
    protocols = args.protocol or ["twilio", "browser"]
    out = RESULTS / (args.out or (f"call_latency_{args.speech}.json" if args.speech in CALLERS
                                  else "call_latency.json"))
    loadavg = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data))
        try:
            report: dict[str, Any] = {"turns": args.turns, "speech": args.speech,
                                      "protocols": {}}
            for protocol in protocols:
                report["protocols"][protocol] = measure(server, protocol, args.turns,
                                                        args.speech)
            report["memory"] = asyncio.run(memory_per_session(server))
        finally:
            server.stop()
    report["loadavg_start"] = loadavg
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    stamp(out, ["call_latency", *(argv if argv is not None else sys.argv[1:])])
    print_report(report)


if __name__ == "__main__":
    main()
