"""A phone call survives its node: two `voxgate serve` replicas on one PostgreSQL, a caller
that behaves as Twilio does when a stream drops (the stream ends -> POST the <Connect
action> URL, which the load balancer sends to the other node -> a new stream), and a
SIGKILL of the first node mid-booking. The booking completes exactly once.

Real processes and signals, real speech (piper) heard by whisper, the real agents, the
log and the bookings on the real PostgreSQL server (tests/pg_server.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.phone import Next, PhoneCall
from gateway.servers.serve_process import ADMIN_TOKEN, ServeProcess
from voice.audio import resample
from voice.tts import PiperTTS

pytestmark = pytest.mark.slow
ASK = "I'd like to book an appointment for Thursday at three p.m."
YES = "Yes, please."
WAIT_S = 90.0  # bounded waits on what the first node logs


def speech(tts: PiperTTS, text: str) -> Segment:
    pcm = resample(tts.synthesize_sync(text), tts.sample_rate, 16000)
    return Segment(pcm, after_agent_quiet_ms=600, wait_limit_s=25)


@pytest.fixture()
def nodes(tmp_path: Path, pg_url: str) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    env = {"VOXGATE_DATABASE_URL": pg_url}
    a = ServeProcess(tmp_path / "a", **env)
    b = ServeProcess(tmp_path / "b", **env)
    for node in (a, b):
        node.data_dir.mkdir()
    with a, b:
        yield a, b


def events_of(pg_url: str, session: str) -> list[tuple[str, dict[str, Any]]]:
    with psycopg.connect(pg_url) as db:
        rows = db.execute("SELECT type, data FROM events WHERE stream = %s ORDER BY seq",
                          (f"call:{session}",)).fetchall()
    return [(str(t), json.loads(d)) for t, d in rows]


def bookings(pg_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(pg_url) as db:
        rows = db.execute("SELECT time, status FROM bookings ORDER BY id").fetchall()
    return [(str(t), str(s)) for t, s in rows]


def wait_for(pg_url: str, session: str, seen: Callable[[str, dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:  # a bounded wait, not a timing assertion
        if any(seen(t, d) for t, d in events_of(pg_url, session)):
            return
        time.sleep(0.1)
    raise AssertionError(f"not in the log: {events_of(pg_url, session)[-10:]}")


def killed_mid_call(node: ServeProcess, phone: PhoneCall, plan: Next, script: list[Segment],
                    pg_url: str, seen: Callable[[str, dict[str, Any]], bool]) -> CallResult:
    """Place the stream ``plan`` names on ``node``; SIGKILL the node once the log shows
    ``seen``; the stream dies with it."""
    async def scenario() -> CallResult:
        call = asyncio.create_task(stream(node.url, phone, plan, script, hang_up=False))
        await asyncio.to_thread(wait_for, pg_url, plan.parameters["session"], seen)
        node.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        return await call
    result = asyncio.run(scenario())
    assert node.proc is not None and node.proc.wait(30) == -signal.SIGKILL
    return result


async def stream(url: str, phone: PhoneCall, plan: Next, script: list[Segment], *,
                 hang_up: bool = True) -> CallResult:
    assert plan.stream is not None
    return await run_call(None, "twilio", plan.stream, script=script, caller=phone.caller,
                          call_sid=phone.call_sid, parameters=plan.parameters,
                          hangup_after_reply=hang_up, tail_s=30.0 if not hang_up else 6.0,
                          max_call_s=120, admin_token=ADMIN_TOKEN)


def carried_on(b: ServeProcess, phone: PhoneCall, first: Next,
               script: list[Segment]) -> tuple[Next, CallResult]:
    """The dropped stream's <Connect action>, answered by node ``b``, and the new stream."""
    assert first.action is not None
    plan = phone.stream_ended(first.action, base_url=b.url)
    assert plan.stream is not None, plan
    assert plan.parameters["resume_from"] == first.parameters["session"]
    return plan, asyncio.run(stream(b.url, phone, plan, script))


def said(result: CallResult) -> str:
    return " ".join(u.text for u in result.agent_replies())


def test_a_call_whose_node_dies_at_the_read_back_books_once_on_the_other(
        nodes: tuple[ServeProcess, ServeProcess], pg_url: str, piper_joe: PiperTTS) -> None:
    a, b = nodes
    phone = PhoneCall()
    first = phone.answer(a.url)
    session = first.parameters["session"]
    killed_mid_call(a, phone, first, [speech(piper_joe, ASK)], pg_url,
                    lambda t, d: t == "agent.reply" and "shall I book it" in str(d.get("text")))
    assert bookings(pg_url) == []  # nothing before the yes

    plan, result = carried_on(b, phone, first, [speech(piper_joe, YES)])
    text = said(result)
    assert text.startswith("Sorry, we were cut off."), text
    assert "at 3 PM, shall I book it?" in text and "You're booked" in text, text
    assert bookings(pg_url) == [("15:00", "booked")]
    resumed = [d for t, d in events_of(pg_url, plan.parameters["session"])
               if t == "session.resumed"]
    assert [d["from"] for d in resumed] == [session]

    # the call then ended as calls do (the caller hung up): nothing to carry on
    assert plan.action is not None
    assert phone.stream_ended(plan.action, base_url=b.url).hangup


def test_a_call_whose_node_dies_inside_the_booking_books_once_on_the_other(
        nodes: tuple[ServeProcess, ServeProcess], pg_url: str, piper_joe: PiperTTS) -> None:
    a, b = nodes
    phone = PhoneCall()
    first = phone.answer(a.url)
    # the test holds the bookings table: node A's calendar.book waits inside its INSERT
    # (reads go on), so the kill lands inside the tool, after the log has the step
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE bookings IN EXCLUSIVE MODE")
        killed_mid_call(a, phone, first, [speech(piper_joe, ASK), speech(piper_joe, YES)],
                        pg_url, lambda t, d: t == "step.started" and d.get("step") == "book")
        holder.rollback()
    steps = [d.get("step") for t, d in events_of(pg_url, first.parameters["session"])
             if t == "step.completed"]
    assert "book" not in steps  # killed inside it: its transaction died with the node
    _, result = carried_on(b, phone, first, [])
    text = said(result)
    assert text.startswith("Sorry, we were cut off."), text
    assert "You're booked for Thursday at 3 PM" in text, text
    assert bookings(pg_url) == [("15:00", "booked")]
