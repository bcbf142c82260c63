"""How long a LiveKit caller hears nothing when the worker of their call is SIGKILLed.

    python -m benchmarks.livekit_resume [--runs 5]

Starts PostgreSQL and a livekit-server (gateway/servers/), and two ``voxgate
livekit-worker`` processes with the front-desk agents on that one event log, taking one
call each (``--capacity 1``) by explicit dispatch. Each run: a caller on the ``livekit``
SDK joins, waits until the greeting has played, then the worker that answered is
SIGKILLed and the clock starts. Measured from the SIGKILL:

* the new agent (from the other worker) is in the room;
* its first audio is heard ("Sorry, we were cut off. ...", checked in its transcription).

livekit-server keeps a participant whose connection vanished for its ping timeout (15 s)
in case it reconnects, so the first figure is mostly that wait.

The killed worker is started again before the next run, so each run has a survivor.
Prints a table and writes benchmarks/results/livekit_resume.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from gateway.evaluation.livekit_caller import Caller
from gateway.livekit.worker import WORKER_ATTRIBUTE
from gateway.servers import postgres
from gateway.servers.livekit import (
    LiveKitServer,
    WorkerProcess,
    running,
    start_worker,
    wait_registered,
)

RESULTS = Path(__file__).parent / "results"
AGENT = "resume-bench"


async def one_run(server: LiveKitServer, workers: dict[str, WorkerProcess]) -> dict[str, Any]:
    room = f"resume-{uuid.uuid4().hex[:8]}"
    caller = Caller(server.url, server.token(f"caller-{room}", room, AGENT))
    await caller.join()
    try:
        first = await caller.wait_for_agent(90)
        heard = caller.heard
        await caller.wait_for("greeting played", lambda: heard.audible_at and heard.of_type(
            "agent.state") and heard.of_type("agent.state")[-1].get("state") == "listening",
            60)
        old = caller.agent
        killed_at = time.monotonic()
        workers[first].proc.send_signal(signal.SIGKILL)
        workers[first].proc.wait(30)
        await caller.wait_for("a new agent", lambda: [
            p for p in caller.room.remote_participants.values()
            if WORKER_ATTRIBUTE in p.attributes and p is not old], 60)
        agent_at = time.monotonic()
        await caller.wait_for("its voice", lambda: [
            t for t in heard.audible_at if t > agent_at], 60)
        voice_at = next(t for t in heard.audible_at if t > agent_at)
        # its words come as a transcription too, a little after the audio starts
        apology = await caller.wait_for("the apology", lambda: [
            t for s, t in heard.transcriptions if s == "agent" and "cut off" in t], 30)
    finally:
        await caller.leave()
    return {"killed": first, "agent_s": agent_at - killed_at, "voice_s": voice_at - killed_at,
            "apology": bool(apology)}


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "median_ms": round(statistics.median(values) * 1000),
            "min_ms": round(min(values) * 1000), "max_ms": round(max(values) * 1000)}


def measure(runs: int, folder: Path) -> dict[str, Any]:
    results = []
    with postgres.running() as pg, running() as server:
        env = {"VOXGATE_DATABASE_URL": pg.new_database(), "VOXGATE_AGENT": "supervisor"}

        def start(name: str) -> WorkerProcess:
            worker = start_worker(server, name, folder / name, "--agent-name", AGENT, env=env)
            wait_registered(worker)
            return worker

        workers = {name: start(name) for name in ("wa", "wb")}
        try:
            for _ in range(runs):
                result = asyncio.run(one_run(server, workers))
                results.append(result)
                killed = result["killed"]
                workers[killed] = start(killed)
        finally:
            for worker in workers.values():
                if worker.proc.poll() is None:
                    worker.proc.kill()
                    worker.proc.wait(30)
    return {"runs": runs, "new_agent_in_room": summary([r["agent_s"] for r in results]),
            "new_agent_heard": summary([r["voice_s"] for r in results]),
            "apologised": sum(r["apology"] for r in results), "each": results}


def main() -> None:
    from benchmarks.run_all import stamp

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = measure(args.runs, Path(folder))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "livekit_resume.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    stamp(out, ["livekit_resume", *sys.argv[1:]])
    print(f"{'from the SIGKILL':<28} {'n':>3} {'median ms':>10} {'min':>6} {'max':>6}")
    for key in ("new_agent_in_room", "new_agent_heard"):
        row = report[key]
        print(f"{key:<28} {row['n']:>3} {row['median_ms']:>10} {row['min_ms']:>6} "
              f"{row['max_ms']:>6}")
    print(f"apologised ('cut off') in {report['apologised']} of {report['runs']} runs")


if __name__ == "__main__":
    main()
