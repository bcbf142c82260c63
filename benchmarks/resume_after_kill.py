"""How long a phone call is silent when its node dies: two `voxgate serve` replicas on one
PostgreSQL, a Twilio-like caller (gateway/evaluation/phone.py) asks for a booking on node
A, A is SIGKILLed once it has read the booking back, and the caller's <Connect action> goes
to node B, which carries the call on from the shared log.

    python -m benchmarks.resume_after_kill [--runs 3] [--database-url URL]

Per run, on one clock (one machine): SIGKILL -> B answered the action URL (asked at once:
a killed process's sockets close at once) -> B's new session started -> B's agent starts
speaking ("Sorry, we were cut off. ..."), the last two from the events B logs (their
``ts``). Twilio's own delay to notice the stream's end and request the action URL is not
in it (a machine that vanishes without closing its sockets adds TCP's timeouts). Each run books
another hour and checks the booking is made exactly once. Writes
benchmarks/results/resume_after_kill.json, stamped with its provenance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.run_all import stamp
from gateway.evaluation.client import Segment, run_call
from gateway.evaluation.phone import Next, PhoneCall
from gateway.servers.postgres import running
from gateway.servers.serve_process import ADMIN_TOKEN, ServeProcess
from orchestration.patterns.bulkhead import Bulkhead
from voice.audio import resample
from voice.config import TtsConfig
from voice.tts import PiperTTS

RESULTS = Path(__file__).parent / "results"
# a different hour each run, each booked exactly once
HOURS = {"two p.m.": "14:00", "three p.m.": "15:00", "four p.m.": "16:00",
         "ten a.m.": "10:00", "eleven a.m.": "11:00"}
WAIT_S = 90.0


def _events(url: str, session: str) -> list[tuple[str, float, dict[str, Any]]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT type, ts, data FROM events WHERE stream = %s ORDER BY seq",
                          (f"call:{session}",)).fetchall()
    return [(str(t), float(ts), json.loads(d)) for t, ts, d in rows]


def _wait_read_back(url: str, session: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # bounded
        if any(t == "agent.reply" and "shall I book it" in str(d.get("text"))
               for t, _, d in _events(url, session)):
            return
        time.sleep(0.02)
    raise RuntimeError(f"no read-back from node A: {_events(url, session)[-5:]}")


def _speech(tts: PiperTTS, text: str) -> Segment:
    return Segment(resample(tts.synthesize_sync(text), tts.sample_rate, 16000),
                   after_agent_quiet_ms=600, wait_limit_s=25)


async def _stream(plan: Next, phone: PhoneCall, script: list[Segment], hang_up: bool) -> Any:
    assert plan.stream is not None
    return await run_call(None, "twilio", plan.stream, script=script, caller=phone.caller,
                          call_sid=phone.call_sid, parameters=plan.parameters,
                          hangup_after_reply=hang_up, tail_s=6.0 if hang_up else 30.0,
                          max_call_s=120, admin_token=ADMIN_TOKEN)


def one_run(a: ServeProcess, b: ServeProcess, url: str, tts: PiperTTS,
            hour: str) -> dict[str, float]:
    phone = PhoneCall()
    first = phone.answer(a.url)
    ask = _speech(tts, f"I'd like to book an appointment for Thursday at {hour}")
    yes = [_speech(tts, "Yes, please.")]

    async def scenario() -> tuple[float, float, Next, Any]:
        call = asyncio.create_task(_stream(first, phone, [ask], hang_up=False))
        await asyncio.to_thread(_wait_read_back, url, first.parameters["session"])
        killed = time.time()
        a.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        # the dead process's sockets close at once (loopback): Twilio sees the stream end
        # and asks the action URL; the load balancer sends it to B
        assert first.action is not None
        plan = await asyncio.to_thread(phone.stream_ended, first.action, b.url)
        answered = time.time()
        if plan.stream is None or "resume_from" not in plan.parameters:
            raise RuntimeError(f"node B did not carry the call on: {plan}")
        resumed = asyncio.create_task(_stream(plan, phone, yes, hang_up=True))
        await call  # our caller's own bookkeeping of the dead stream, not timed
        return killed, answered, plan, await resumed

    killed, answered, plan, result = asyncio.run(scenario())
    said = " ".join(u.text for u in result.agent_replies())
    if "You're booked" not in said:
        raise RuntimeError(f"the resumed call did not book: {said!r}")
    events = _events(url, plan.parameters["session"])
    started = next(ts for t, ts, _ in events if t == "session.started")
    speaking = next(ts for t, ts, d in events
                    if t == "agent.state" and d.get("state") == "agent_speaking")
    return {"action_answered_s": answered - killed, "session_started_s": started - killed,
            "agent_speaking_s": speaking - killed}


def _booked(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        return [str(t) for (t,) in db.execute(
            "SELECT time FROM bookings WHERE status = 'booked' ORDER BY id").fetchall()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, choices=range(1, len(HOURS) + 1))
    parser.add_argument("--database-url", default=None,
                        help="an empty database on an existing server (default: a "
                             "throwaway server started here)")
    args = parser.parse_args(argv)
    tts = PiperTTS(TtsConfig(), Bulkhead("bench-tts", 1, 4))
    tts.load()
    runs: list[dict[str, float]] = []
    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(running()).new_database()
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        b = stack.enter_context(ServeProcess(_mkdir(tmp / "b"), VOXGATE_DATABASE_URL=url))
        for i, hour in enumerate(list(HOURS)[:args.runs]):
            with ServeProcess(_mkdir(tmp / f"a{i}"), VOXGATE_DATABASE_URL=url) as a:
                runs.append(one_run(a, b, url, tts, hour))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in
                                                runs[-1].items()), flush=True)
        booked = _booked(url)
    expected = sorted(list(HOURS.values())[:args.runs])
    summary = {k: round(statistics.median(r[k] for r in runs) * 1000, 1) for k in runs[0]}
    out = {"runs": runs, "median_ms": summary, "bookings": booked,
           "exactly_once": sorted(booked) == expected}
    print(json.dumps({"median_ms": summary, "exactly_once": out["exactly_once"]}, indent=2))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "resume_after_kill.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    stamp(path, ["resume_after_kill", *(argv or sys.argv[1:])])
    return 0 if out["exactly_once"] else 1


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
