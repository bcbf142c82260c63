"""How many idle phone streams one `voxgate serve` process holds: N Twilio media streams
(/ws/twilio) open at once on a loopback port, each greeted by the agent, then held.

    python -m benchmarks.idle_streams [--steps 100,250,500] [--modes silent,held]
                                      [--hold-s 60] [--no-probe] [--hiss-dbfs -70]
                                      [--out idle_streams.json]

Modes: ``silent`` sends 20 ms mu-law frames of line silence in real time, as Twilio does
for a caller who says nothing; ``hiss`` the same with a line's faint white noise at
``--hiss-dbfs`` RMS (over the gateway's noise gate, about -68 dBFS, frames take the full
path: ``voice/line_in.py``); ``held`` sends nothing after ``start`` (a caller on hold, a
muted widget). The server's policies that would end or refuse such calls are raised for
the measurement (they are policies; this measures what the process can hold):
``max_sessions``, ``limits.live_calls_per_address``, ``voice.turn.reprompt_after_s`` (a
silent caller is asked "Are you still there?" and hung up on) and ``idle_timeout_s``
(a stream that sends nothing is closed). A probe on a server with the default policies
records what they do to each mode (``--no-probe`` skips it).

Per step, on one server per mode (steps ascending): streams connected of asked, streams
open at the end of the hold (``--hold-s`` after the last connected), the server's CPU (%
of one core and CPU seconds per stream-minute), resident memory (total, and per stream
over the fresh server), open fds, /healthz response time p50/p95 during the hold (the
event loop's lag), one live caller placed 10 s into the hold (real speech, an Asterisk
prompt: answered or not and its response latency), and the client's own CPU and late
frames (the client must not be the bottleneck). Writes benchmarks/results/idle_streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.idle_client import HISS_DBFS, Crowd, Mode
from benchmarks.load_ramp import pct
from benchmarks.run_all import stamp
from gateway.evaluation.client import CallError, run_call
from gateway.evaluation.speech import load_prompt
from gateway.servers.serve_process import ADMIN_TOKEN, ServeProcess

RESULTS = Path(__file__).parent / "results"
LIVE_PROMPT = "conf-getpin"  # "Please enter your conference pin number."
LIVE_AT_S = 10.0
PROBE_STREAMS = 3
PROBE_S = 45.0


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (the server subprocess inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raised_policies(streams: int, hold_s: float) -> dict[str, str]:
    """The settings (environment) that let ``streams`` idle calls stay for ``hold_s``."""
    room = str(streams + 16)
    quiet = str(int(hold_s * 4 + 600))
    return {"VOXGATE_MAX_SESSIONS": room, "VOXGATE_LIMITS__LIVE_CALLS_PER_ADDRESS": room,
            "VOXGATE_VOICE__TURN__REPROMPT_AFTER_S": quiet, "VOXGATE_IDLE_TIMEOUT_S": quiet}


def server_nofile(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return None


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def health_times(url: str, until: float, out: list[float]) -> None:
    """/healthz response times (ms) every 0.25 s until ``until``: the server's loop lag."""
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < until:
            t = time.monotonic()
            try:
                await client.get(f"{url}/healthz")
                out.append((time.monotonic() - t) * 1000)
            except httpx.HTTPError:
                out.append(30_000.0)
            await asyncio.sleep(0.25)


async def live_call(url: str) -> dict[str, Any]:
    """One real caller: the prompt after the greeting; its response latency."""
    pcm, text = load_prompt(LIVE_PROMPT)
    try:
        result = await run_call(pcm, "twilio", url, tail_s=8.0, max_call_s=45.0,
                                admin_token=ADMIN_TOKEN)
    except CallError as exc:
        return {"answered": False, "error": str(exc)[:200]}
    heard = [r.latency_s for r in result.response_latencies() if r.latency_s is not None]
    return {"answered": bool(heard), "said": text,
            "transcript": " ".join(u.text for u in result.user_transcripts()),
            "response_ms": round(heard[0] * 1000) if heard else None}


def _ms(values: list[float], q: float) -> int | None:
    value = statistics.median(values) if q == 0.5 and values else pct(values, q)
    return None if value is None else round(value)


async def hold(node: ServeProcess, crowd: Crowd, hold_s: float) -> dict[str, Any]:
    """Hold the crowd open ``hold_s``: the server's figures, /healthz and a live call."""
    until = time.monotonic() + hold_s
    lags: list[float] = []
    probe = asyncio.create_task(health_times(node.url, until, lags))
    cpu0, client0, t0 = node.cpu_s(), client_cpu_s(), time.monotonic()
    rss, fds = [], []
    caller: asyncio.Task[dict[str, Any]] | None = None
    while time.monotonic() < until:
        if caller is None and time.monotonic() - t0 >= LIVE_AT_S:
            caller = asyncio.create_task(live_call(node.url))
        figures = node.proc_figures()
        rss.append(figures["rss_kb"])
        fds.append(figures["fds"])
        await asyncio.sleep(1.0)
    elapsed, cpu = time.monotonic() - t0, node.cpu_s() - cpu0
    client = client_cpu_s() - client0
    await probe
    return {"elapsed_s": elapsed, "cpu_s": cpu, "client_cpu_s": client,
            "rss_kb": max(rss), "fds": max(fds), "lags": lags,
            "live": await caller if caller is not None else {"answered": None}}


async def step(node: ServeProcess, mode: Mode, n: int, hold_s: float,
               idle_kb: int, hiss_dbfs: float = HISS_DBFS) -> dict[str, Any]:
    ws_url = node.url.replace("http://", "ws://") + "/ws/twilio"
    crowd = Crowd(ws_url, mode, hiss_dbfs)
    t0 = time.monotonic()
    await crowd.open(n)
    connect_s = time.monotonic() - t0
    await asyncio.sleep(3.0)  # the greetings play
    held = await hold(node, crowd, hold_s)
    open_at_end = crowd.open_count()
    closed = [s for s in crowd.streams if s.closed_at is not None]
    late = crowd.sender.late_frames if crowd.sender else 0
    sent = crowd.sender.sent if crowd.sender else 0
    greeted = sum(s.first_audio_at is not None for s in crowd.streams)
    await crowd.close()
    minutes = len(crowd.streams) * held["elapsed_s"] / 60
    return {
        "mode": mode, "asked": n, "connected": len(crowd.streams),
        "connect_failures": crowd.failures[:5], "connect_s": round(connect_s, 1),
        "greeted": greeted, "open_at_end": open_at_end,
        "closed_by_server": len(closed),
        "close_reasons": sorted({f"{s.close_code} {s.close_reason}" for s in closed})[:5],
        "server_cpu_pct": round(100 * held["cpu_s"] / held["elapsed_s"], 1),
        "server_cpu_s_per_stream_minute": round(held["cpu_s"] / minutes, 3) if minutes else None,
        "server_rss_mb": round(held["rss_kb"] / 1024, 1),
        "server_rss_kb_per_stream": round((held["rss_kb"] - idle_kb) / max(1, len(crowd.streams))),
        "server_fds": held["fds"],
        "healthz_p50_ms": _ms(held["lags"], 0.5), "healthz_p95_ms": _ms(held["lags"], 0.95),
        "healthz_max_ms": round(max(held["lags"])) if held["lags"] else None,
        "live_call": held["live"],
        "client_cpu_pct": round(100 * held["client_cpu_s"] / held["elapsed_s"], 1),
        "client_frames_sent": sent, "client_late_frames": late,
    }


async def wait_drained(node: ServeProcess, timeout_s: float = 60.0) -> None:
    """Until the server has ended every call of the last step (its /healthz says so)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            body = (await client.get(f"{node.url}/healthz")).json()
            if not body.get("sessions"):
                return
            await asyncio.sleep(0.5)


async def probe(node: ServeProcess, mode: Mode, seconds: float) -> dict[str, Any]:
    """A few streams on a server with the default policies: which of them it ends, when
    and why (a policy at work, not a limit of the process)."""
    ws_url = node.url.replace("http://", "ws://") + "/ws/twilio"
    crowd = Crowd(ws_url, mode)
    t0 = time.monotonic()
    await crowd.open(PROBE_STREAMS)
    await asyncio.wait(crowd.readers, timeout=seconds)  # each ends when its stream does
    closed = [s for s in crowd.streams if s.closed_at is not None]
    ends = [round(s.closed_at - t0, 1) for s in closed if s.closed_at is not None]
    await crowd.close()
    return {"mode": mode, "streams": len(crowd.streams), "closed_by_server": len(closed),
            "closed_after_s": sorted(ends),
            "close_reasons": sorted({f"{s.close_code} {s.close_reason}" for s in closed}),
            "watched_s": seconds}


async def run_mode(mode: Mode, counts: list[int], hold_s: float,
                   hiss_dbfs: float = HISS_DBFS) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, ServeProcess(
            Path(tmp), **raised_policies(max(counts), hold_s)) as node:
        idle_kb = node.proc_figures()["rss_kb"]
        for n in counts:
            rows.append(await step(node, mode, n, hold_s, idle_kb, hiss_dbfs))
            if mode == "hiss":
                rows[-1]["hiss_dbfs"] = hiss_dbfs
            rows[-1]["server_nofile_limit"] = server_nofile(node.pid)
            rows[-1]["server_idle_rss_mb"] = round(idle_kb / 1024, 1)
            print(row_text(rows[-1]), flush=True)
            await wait_drained(node)
    return rows


async def run_probe(modes: list[Mode]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp, ServeProcess(Path(tmp)) as node:
        found = await asyncio.gather(*(probe(node, m, PROBE_S) for m in modes))
    for p in found:
        print(f"default policies, {p['mode']}: {p['closed_by_server']}/{p['streams']} "
              f"closed by the server after {p['closed_after_s']} s: {p['close_reasons']}")
    return list(found)


def row_text(r: dict[str, Any]) -> str:
    live = r["live_call"]
    answered = (f"answered in {live.get('response_ms')} ms" if live.get("answered")
                else "NOT answered")
    if "answered_runs" in live:  # a median over runs
        answered += f" ({live['answered_runs']}/{live['runs']} runs answered)"
    return (f"{r['mode']:>6} {r['asked']:>4}: connected {r['connected']}, open at end "
            f"{r['open_at_end']}, server {r['server_cpu_pct']} % cpu "
            f"({r['server_cpu_s_per_stream_minute']} s/stream-min), "
            f"{r['server_rss_mb']} MB ({r['server_rss_kb_per_stream']} kB/stream), "
            f"{r['server_fds']} fds, healthz p50/p95 {r['healthz_p50_ms']}/"
            f"{r['healthz_p95_ms']} ms, live call "
            f"{answered}, client {r['client_cpu_pct']} % cpu, "
            f"{r['client_late_frames']} late frames")


def medians(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per step (mode, streams asked), the median of each number over the runs; the other
    fields from the first run, and how many runs answered the live caller."""
    out = []
    for rows in zip(*runs, strict=True):
        row = dict(rows[0])
        for key, value in row.items():
            numbers = [r[key] for r in rows if isinstance(r.get(key), int | float)]
            if key != "asked" and isinstance(value, int | float) and not isinstance(value, bool) \
                    and numbers:
                row[key] = statistics.median(numbers)
        latencies = [r["live_call"].get("response_ms") for r in rows]
        heard = [x for x in latencies if x is not None]
        row["live_call"] = {"answered_runs": len(heard), "runs": len(rows),
                            "response_ms": statistics.median(heard) if heard else None,
                            "answered": bool(heard), "each_ms": latencies}
        out.append(row)
    return out


def add_marginal(steps: list[dict[str, Any]]) -> None:
    """Memory per stream as the slope from each mode's smallest step (the server's fixed
    costs, such as the greetings' synthesis and the live caller, then cancel out)."""
    for row in steps:
        first = min((s for s in steps if s["mode"] == row["mode"]), key=lambda s: s["asked"])
        held = row["open_at_end"] - first["open_at_end"]
        row["server_rss_kb_per_stream_marginal"] = round(
            (row["server_rss_mb"] - first["server_rss_mb"]) * 1024 / held) if held > 0 else None


def headline(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest step of each mode (what ``make bench``'s table shows)."""
    most = max((s["asked"] for s in steps), default=0)
    out: dict[str, Any] = {"streams": most}
    for row in steps:
        if row["asked"] == most:
            keys = ("connected", "open_at_end", "server_cpu_pct", "server_rss_kb_per_stream",
                    "server_rss_kb_per_stream_marginal", "healthz_p95_ms")
            out[row["mode"]] = {k: row[k] for k in keys} | {
                "live_call_answered": row["live_call"]["answered"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="100,250,500")
    parser.add_argument("--modes", default="silent,held")
    parser.add_argument("--hold-s", type=float, default=60.0)
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="repeat; medians are quoted")
    parser.add_argument("--hiss-dbfs", type=float, default=HISS_DBFS)
    parser.add_argument("--out", default="idle_streams.json")
    args = parser.parse_args(argv)
    counts = sorted(int(x) for x in args.steps.split(","))
    modes: list[Mode] = []
    for name in args.modes.split(","):
        if name not in ("silent", "hiss", "held"):
            parser.error(f"unknown mode {name!r} (silent, hiss, held)")
        modes.append(name)
    nofile = raise_nofile()
    load_prompt(LIVE_PROMPT)  # read and resampled now, not on the client's loop mid-hold
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        steps = [row for mode in modes
                 for row in asyncio.run(run_mode(mode, counts, args.hold_s, args.hiss_dbfs))]
        runs.append({"load_avg": [round(x, 2) for x in os.getloadavg()], "steps": steps})
    probes = [] if args.no_probe else asyncio.run(run_probe(modes))
    out = {"hold_s": args.hold_s, "client_nofile_limit": nofile, "live_prompt": LIVE_PROMPT,
           "raised_policies": raised_policies(max(counts), args.hold_s),
           "default_policy_probe": probes, "runs": len(runs),
           "steps": medians([r["steps"] for r in runs]), "each_run": runs}
    add_marginal(out["steps"])
    out["headline"] = headline(out["steps"])
    print("\nmedians of", len(runs), "run(s):")
    for row in out["steps"]:
        print(row_text(row))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / args.out
    path.write_text(json.dumps(out, indent=2) + "\n")
    stamp(path, ["idle_streams", *(argv if argv is not None else sys.argv[1:])])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
