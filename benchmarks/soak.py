"""Soak: many real-speech calls against one `voxgate serve`, then a hunt for leaks.

    python -m benchmarks.soak [--calls 50] [--concurrency 4] [--warmup 6] [--turns 3]
                              [--checkpoint 11] [--server-env KEY=VALUE] [--quick]

Starts `voxgate serve` as a subprocess on a loopback port (the default front-desk agents;
its /proc figures are its own) and places ``--calls`` calls, ``--concurrency`` at a time,
alternating /ws/twilio and /ws/browser, with the real-time caller of gateway/evaluation/client.py.
Each caller says ``--turns`` things: Debian's asterisk prompts (real human speech) and
requests the agents act on, spoken by piper. A call the agent ends on Twilio (a hang-up or
a transfer) is followed by the ``/twilio/after-stream`` webhook, as Twilio sends it.

After the first ``--warmup`` calls (models warm, pools filled), and again every
``--checkpoint`` calls, once the gateway is idle, it records the asyncio tasks, threads
and open file descriptors (``GET /api/debug/runtime``, and /proc/<pid>/fd and /task from
outside), the resident memory (as /proc shows it, and after a malloc_trim) and the Python
objects by type, and checks:

* no task, thread or descriptor more at the end than after warm-up (a count that rose
  once early and then stayed flat over the second half of the calls is a pool filling,
  not a leak, and is reported as such);
* resident memory grew by less than 5 % after warm-up;
* every call's events are in the event log, from ``session.started`` to
  ``session.ended``, including every event its caller received.

Prints a table and writes benchmarks/results/soak.json (with the commit, machine, date
and the idle curve); exit status 1 if a check fails. ``--quick``: 10 calls, 3 at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.provenance import commit, machine
from gateway.api.sessions import SessionLog
from gateway.evaluation.client import CallError, CallResult, Segment, run_call
from gateway.evaluation.speech import SHORT_PROMPTS, load_prompt
from gateway.servers.serve_process import ADMIN_TOKEN, ServeProcess
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import resample

RESULTS = Path(__file__).parent / "results"
MAX_RSS_GROWTH = 0.05
# what callers ask the front desk (spoken by piper), between the asterisk prompts
REQUESTS = (
    "What's the status of the payment service?",
    "Take a note: call the plumber on Friday.",
    "Read me my notes.",
    "I'd like to book an appointment on Tuesday at three p.m.",
    "No, thank you.",
    "What can you do?",
    "Is the website up?",
    "My internet connection keeps dropping.",
)


@dataclass
class Placed:
    index: int
    protocol: str
    result: CallResult | None = None
    error: str | None = None
    session_id: str | None = None
    seen_seqs: set[int] = field(default_factory=set)  # bus seqs of the events it received


def scripts(turns: int) -> list[list[bytes]]:
    """Caller audio (PCM16 16 kHz), one list of turns per kind of call."""
    from voice.config import TtsConfig
    from voice.tts import PiperTTS

    tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 4))
    tts.load()
    requests = [resample(tts.synthesize_sync(t), tts.sample_rate, 16000) for t in REQUESTS]
    prompts = [load_prompt(name)[0] for name in SHORT_PROMPTS]
    out = []
    for i in range(len(REQUESTS)):
        turns_of_call = []
        for k in range(turns):  # real speech first, then a request, alternating
            pool = prompts if k % 2 == 0 else requests
            turns_of_call.append(pool[(i * turns + k) % len(pool)])
        out.append(turns_of_call)
    return out


async def place(gw: ServeProcess, call: Placed, turns: list[bytes]) -> None:
    script = [Segment(pcm, after_agent_quiet_ms=600, wait_limit_s=30) for pcm in turns]
    caller = f"+1555010{call.index:04d}"
    try:
        result = await run_call(None, call.protocol, gw.url, script=script,  # type: ignore[arg-type]
                                caller=caller, tail_s=8.0, max_call_s=180,
                                admin_token=ADMIN_TOKEN)
    except CallError as exc:
        call.error = str(exc)
        return
    call.result, call.session_id = result, result.session_id
    call.seen_seqs = {e.event.seq for e in result.events}
    if call.protocol == "twilio" and result.ended_by == "agent":
        # Twilio asks the <Connect action> what to do once the stream has closed
        async with httpx.AsyncClient(base_url=gw.url) as http:
            await http.post("/twilio/after-stream", data={"CallSid": result.call_sid or ""})


async def run_calls(gw: ServeProcess, calls: list[Placed], audio: list[list[bytes]],
                    concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Placed) -> None:
        async with gate:
            await place(gw, call, audio[call.index % len(audio)])
            print(f"  call {call.index + 1:3d} {call.protocol:7s} "
                  f"{call.error or call.result.ended_by if call.result else '?'}", flush=True)

    await asyncio.gather(*(one(c) for c in calls))


def idle_figures(gw: ServeProcess, timeout_s: float = 60.0) -> dict[str, Any]:
    """The gateway's figures once no call is live and no STT/TTS job is running: /proc
    from outside first (resident memory as an operator sees it), then the gateway's own
    view after a malloc_trim (what is still held once the free heap is given back)."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = gw.debug()
        idle = now["sessions"] == 0 and all(
            p == {"active": 0, "queued": 0} for p in now["pools"].values())
        if idle or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2.0)  # handlers finishing their sockets, the log writer's last batch
    proc = gw.proc_figures()
    figures = gw.debug(objects=300, trim=True)
    figures["proc"] = proc
    return figures


def rss_sampler(gw: ServeProcess, samples: list[tuple[float, int]], stop: asyncio.Event
                ) -> asyncio.Task[None]:
    async def sample() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            samples.append((round(time.monotonic() - t0, 1), gw.proc_figures()["rss_kb"]))
            await asyncio.sleep(5.0)

    return asyncio.create_task(sample())


# (key in a checkpoint, label, the names behind it in the debug figures)
COUNTS = (("tasks", "asyncio tasks", "task_names"), ("threads", "threads", "thread_names"),
          ("proc_threads", "  threads, /proc", None),
          ("fds", "open file descriptors", "fd_kinds"),
          ("proc_fds", "  open file descriptors, /proc", None),
          ("transfers", "pending Twilio transfers", None))


def verdict(curve: list[dict[str, Any]], key: str) -> str:
    """ok when nothing is held beyond warm-up; also when a count rose once early (a pool
    creating its threads lazily, SQLite keeping a closed file's descriptor for reuse) and
    then stayed flat over the second half of the calls. A leak grows with the calls."""
    start, end = curve[0][key], curve[-1][key]
    if end <= start:
        return "ok"
    middle = curve[len(curve) // 2]
    if key != "tasks" and len(curve) >= 3 and end == middle[key]:
        flat = curve[-1]["calls"] - middle["calls"]
        return f"ok: +{end - start} early, then flat for {flat} calls"
    return "GREW"


# thread pools that start their workers lazily, up to a fixed bound: the event loop's
# default executor (asyncio.to_thread; uvloop names its workers uvloop_N) is a
# ThreadPoolExecutor of min(32, cpus + 4) workers. A new worker there under a busier
# stretch of calls is the pool filling, not a leak, as long as it stays within the bound.
BOUNDED_POOLS = {"uvloop_N": min(32, (os.cpu_count() or 1) + 4),
                 "asyncio_N": min(32, (os.cpu_count() or 1) + 4)}


def within_pools(grew: dict[str, int], names: dict[str, int]) -> bool:
    return bool(grew) and all(name in BOUNDED_POOLS and names[name] <= BOUNDED_POOLS[name]
                              for name in grew)


def compare(before: dict[str, Any], after: dict[str, Any],
            curve: list[dict[str, Any]]) -> dict[str, Any]:
    """What grew between the idle snapshot after warm-up and the one at the end."""
    counts = {}
    for key, _, names in COUNTS:
        grew = dict(Counter(after[names]) - Counter(before[names])) if names else {}
        counts[key] = {"after_warmup": curve[0][key], "end": curve[-1][key],
                       "verdict": verdict(curve, key), "grew": grew}
    threads = counts["threads"]
    if threads["verdict"] == "GREW" and within_pools(threads["grew"], after["thread_names"]):
        pools = ", ".join(f"{n} +{k} (at most {BOUNDED_POOLS[n]})"
                          for n, k in threads["grew"].items())
        threads["verdict"] = f"ok: a bounded pool filling: {pools}"
        extra = threads["end"] - threads["after_warmup"]
        proc = counts["proc_threads"]
        if proc["verdict"] == "GREW" and proc["end"] - proc["after_warmup"] == extra:
            proc["verdict"] = "ok: the same pool"
    rss0, rss1 = before["proc"]["rss_kb"], after["proc"]["rss_kb"]
    return {
        "counts": counts,
        "leak_free": all(c["verdict"].startswith("ok") for c in counts.values()),
        "py_objects": {"after_warmup": before["py_objects"], "end": after["py_objects"],
                       "grew": dict((Counter(after["object_types"])
                                     - Counter(before["object_types"])).most_common(15))},
        "memory": {"rss_after_warmup_mb": round(rss0 / 1024, 1),
                   "rss_end_mb": round(rss1 / 1024, 1),
                   "growth": round((rss1 - rss0) / rss0, 4),
                   # after malloc_trim: free heap handed back, what is really held
                   "trimmed_after_warmup_mb": round(before["rss_kb"] / 1024, 1),
                   "trimmed_end_mb": round(after["rss_kb"] / 1024, 1),
                   "trimmed_growth": round((after["rss_kb"] - before["rss_kb"])
                                           / before["rss_kb"], 4)},
    }


def check_log(data_dir: Path, calls: list[Placed]) -> dict[str, Any]:
    """Each call's stream in the event log: started first, ended last, and every event its
    caller received (by bus sequence number) is there."""
    log = SessionLog(data_dir / "events.db")
    problems: list[str] = []
    try:
        for call in calls:
            if call.session_id is None:
                problems.append(f"call {call.index + 1}: no session ({call.error})")
                continue
            events = log.events(call.session_id)
            types = [e["type"] for e in events]
            if not types or types[0] != "session.started" or types[-1] != "session.ended":
                problems.append(f"call {call.index + 1} ({call.session_id}): "
                                f"{types[:1]} ... {types[-1:]}")
                continue
            logged = {int(e["seq"]) for e in events}  # the bus's seq (gateway.api.sessions)
            missing = call.seen_seqs - logged
            if missing:
                problems.append(f"call {call.index + 1}: {len(missing)} events not logged")
    finally:
        log.close()
    return {"calls": len(calls), "complete": len(calls) - len(problems), "problems": problems}


def table(report: dict[str, Any]) -> str:
    leaks, mem, log = report["leaks"], report["leaks"]["memory"], report["event_log"]
    rows = [("check", "after warm-up", "end", "verdict")]
    for key, label, _ in COUNTS:
        item = leaks["counts"][key]
        grew = ", ".join(f"{k} +{v}" for k, v in item["grew"].items())
        shown = item["verdict"] + (f" ({grew})" if grew else "")
        rows.append((label, str(item["after_warmup"]), str(item["end"]), shown))
    objects = leaks["py_objects"]
    rows.append(("Python objects (gc)", str(objects["after_warmup"]), str(objects["end"]),
                 "for the record"))
    for label, start, end, grew in (
        ("resident memory, MB", "rss_after_warmup_mb", "rss_end_mb", "growth"),
        ("  after malloc_trim, MB", "trimmed_after_warmup_mb", "trimmed_end_mb",
         "trimmed_growth"),
    ):
        rows.append((label, str(mem[start]), str(mem[end]), f"{mem[grew] * 100:+.1f} % "
                     + ("ok" if mem[grew] < MAX_RSS_GROWTH else "TOO MUCH")))
    rows.append(("calls complete in the log", "", f"{log['complete']}/{log['calls']}",
                 "ok" if not log["problems"] else "; ".join(log["problems"][:3])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def checkpoint(calls_done: int, figures: dict[str, Any]) -> dict[str, Any]:
    proc = figures["proc"]
    return {"calls": calls_done, "rss_mb": round(proc["rss_kb"] / 1024, 1),
            "trimmed_mb": round(figures["rss_kb"] / 1024, 1), "tasks": figures["tasks"],
            "threads": figures["threads"], "proc_threads": proc["threads"],
            "fds": figures["fds"], "proc_fds": proc["fds"], "transfers": figures["transfers"],
            "py_objects": figures["py_objects"]}


def soak(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    audio = scripts(args.turns)
    protocols = itertools.cycle(["twilio", "browser"])
    calls = [Placed(i, next(protocols)) for i in range(args.calls)]
    warm, rest = calls[:args.warmup], calls[args.warmup:]
    samples: list[tuple[float, int]] = []
    curve: list[dict[str, Any]] = []
    gw = ServeProcess(data_dir, **dict(kv.split("=", 1) for kv in args.server_env))
    started = time.monotonic()
    with gw:
        cpu0 = gw.cpu_s()
        print(f"warm-up: {len(warm)} calls", flush=True)
        asyncio.run(run_calls(gw, warm, audio, args.concurrency))
        after_warmup = idle_figures(gw)
        curve.append(checkpoint(len(warm), after_warmup))
        print(f"soak: {len(rest)} calls, {args.concurrency} at a time", flush=True)

        async def measured() -> dict[str, Any]:
            stop = asyncio.Event()
            sampler = rss_sampler(gw, samples, stop)
            figures = after_warmup
            for first in range(0, len(rest), args.checkpoint):
                chunk = rest[first:first + args.checkpoint]
                await run_calls(gw, chunk, audio, args.concurrency)
                # idle between chunks: the curve of what stays once calls are over
                figures = await asyncio.to_thread(idle_figures, gw)
                curve.append(checkpoint(len(warm) + first + len(chunk), figures))
                print(f"  idle after {curve[-1]['calls']} calls: {curve[-1]}", flush=True)
            stop.set()
            await sampler
            return figures

        end = asyncio.run(measured())
        cpu_s = gw.cpu_s() - cpu0
    seconds = time.monotonic() - started
    call_s = sum(c.result.duration_s for c in calls if c.result is not None)
    ended = Counter(c.result.ended_by if c.result else "error" for c in calls)
    return {
        "commit": commit(), "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args), "seconds": round(seconds),
        "calls": {"placed": len(calls), "failed": [c.error for c in calls if c.error],
                  "ended_by": dict(ended), "call_minutes": round(call_s / 60, 1),
                  "server_cpu_s_per_call_minute": round(cpu_s / (call_s / 60), 1)
                  if call_s else None},
        "leaks": compare(after_warmup, end, curve),
        "curve": curve,
        "rss_samples_kb": samples,
        "event_log": check_log(data_dir, calls),
        "after_warmup": after_warmup, "end": end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--checkpoint", type=int, default=11,
                        help="calls between idle snapshots (the memory curve)")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the gateway process (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--quick", action="store_true", help="10 calls, 3 at a time")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.concurrency, args.warmup, args.turns, args.checkpoint = 10, 3, 3, 2, 7
    if not 0 < args.warmup < args.calls:
        parser.error("--warmup must be at least 1 and fewer than --calls")
    with tempfile.TemporaryDirectory(prefix="voxgate-soak-") as data:
        report = soak(args, Path(data))
    leaks, log = report["leaks"], report["event_log"]
    report["headline"] = {
        "calls": args.calls, "leak_free": leaks["leak_free"],
        "rss_growth": leaks["memory"]["growth"],
        "rss_end_mb": leaks["memory"]["rss_end_mb"],
        "calls_complete": f"{log['complete']}/{log['calls']}",
        "ok": (leaks["leak_free"] and leaks["memory"]["growth"] < MAX_RSS_GROWTH
               and not log["problems"] and not report["calls"]["failed"]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2))
    print()
    print(table(report))
    print(f"\n{args.calls} calls in {report['seconds']} s, ended by {report['calls']['ended_by']}; "
          f"server CPU {report['calls']['server_cpu_s_per_call_minute']} s per call minute")
    print(f"wrote {RESULTS / 'soak.json'}")
    if not report["headline"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
