"""A call's process killed mid-booking: a fresh process rebuilds the call from the event
log (``CallInfo.resume_from``) and the caller's next "yes" books the slot read back to
them, exactly once. Real processes, real SIGKILL, the real agents, NLU, stores and log."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gateway.evaluation.line import make_system
from orchestration.agents.agent import CallInfo
from orchestration.agents.system import ResumeError
from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.views import project

ROOT = Path(__file__).resolve().parents[2]
ASK = "I'd like to book an appointment for Tuesday at three p.m."
READ_BACK = "Tuesday at 3 PM, shall I book it?"


def _worker(data: Path, session: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.agents.resume_worker", str(data), session, *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE, text=True)


def _said_until_waiting(proc: subprocess.Popen[str]) -> list[str]:
    said: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks on the child's output: no timing involved
        if line.strip() == "waiting":
            return said
        said.append(line.removeprefix("said: ").strip())
    raise AssertionError(f"the worker ended before waiting: {said}, rc={proc.wait()}")


def _bookings(data: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(data / "agents.db") as db:
        rows = db.execute("SELECT day, time, status FROM bookings ORDER BY id").fetchall()
    return [(str(d), str(t), str(s)) for d, t, s in rows]


def _run_to_end(data: Path, session: str, *args: str) -> list[str]:
    proc = _worker(data, session, "--end", *args)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return [line.removeprefix("said: ").strip() for line in out.splitlines()]


def test_a_call_killed_mid_booking_resumes_from_the_log_and_books_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _worker(data, "call-a", ASK)
    try:
        said = _said_until_waiting(first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        assert first.stdout is not None
        first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    assert READ_BACK in " ".join(said)
    assert _bookings(data) == []  # nothing before the yes

    # what the log holds of the dead call: the agent in control, its run, the slots
    store = SQLiteEventStore(data / "events.db", project)
    view = store.view("call:call-a")
    assert view is not None
    conversation = view["conversation"]
    assert conversation["agent"] == "scheduling"
    assert conversation["run"]["state"] == "confirm"
    assert conversation["run"]["status"] == "waiting"
    assert conversation["slots"] == {"date": "2026-12-01", "time": "15:00"}
    assert replay(store).ok
    store.close()

    said = _run_to_end(data, "call-b", "--resume-from", "call-a", "Yes, please.")
    # the apology for the dropped line, then the question the call waited on, again
    assert said[:2] == ["Sorry, we were cut off.", READ_BACK]
    assert "You're booked for Tuesday at 3 PM" in " ".join(said[1:])
    assert _bookings(data) == [("2026-12-01", "15:00", "booked")]

    store = SQLiteEventStore(data / "events.db", project)
    resumed = [e for e in store.read(stream="call:call-b") if e.type == "session.resumed"]
    assert [e.data["from"] for e in resumed] == ["call-a"]
    assert resumed[0].data["agent"] == "scheduling" and resumed[0].data["state"] == "confirm"
    store.close()

    # the booked call carried on again: its booking is done, another yes books nothing
    said = _run_to_end(data, "call-c", "--resume-from", "call-b", "Yes.")
    assert _bookings(data) == [("2026-12-01", "15:00", "booked")]
    assert "booked" not in " ".join(said).lower()


def test_a_call_killed_inside_the_booking_books_once_when_resumed(tmp_path: Path) -> None:
    data, marker = tmp_path / "data", tmp_path / "booked"
    first = _worker(data, "call-a", "--stall-after-booking", str(marker), ASK, "Yes, please.")
    try:
        assert first.stdout is not None
        for line in first.stdout:  # the read-back, then the yes stalls inside the tool
            if READ_BACK in line:
                break
        while not marker.exists():  # the booking is made; a wait, not a timing assertion
            assert first.poll() is None, "the worker ended before booking"
            threading.Event().wait(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        assert first.stdout is not None
        first.stdout.close()
    assert _bookings(data) == [("2026-12-01", "15:00", "booked")]
    store = SQLiteEventStore(data / "events.db", project)
    view = store.view("call:call-a")
    assert view is not None
    run = view["conversation"]["run"]
    assert run["state"] == "book" and run["running"] == {"book": 1}  # in flight when killed
    store.close()

    # resumed: the step runs again with the run's key and gets the booking it made
    said = _run_to_end(data, "call-b", "--resume-from", "call-a")
    assert "You're booked for Tuesday at 3 PM" in " ".join(said)
    assert _bookings(data) == [("2026-12-01", "15:00", "booked")]


def test_resuming_a_call_the_log_does_not_hold_is_refused_clearly(tmp_path: Path) -> None:
    system, _ = make_system(tmp_path, calls=lambda session: None)
    with pytest.raises(ResumeError, match="cannot resume 'nope': no such call in the event log"):
        system.agent(CallInfo("call-x", "twilio", resume_from="nope"))
    system.close()
    system, _ = make_system(tmp_path / "b")
    with pytest.raises(ResumeError, match="the agents have no event log"):
        system.agent(CallInfo("call-x", "twilio", resume_from="nope"))
    system.close()


def test_a_new_voice_call_asks_the_agents_to_resume(tmp_path: Path) -> None:
    # the voice side's CallInfo (what Runtime.new_session gives a CallSession) carries
    # resume_from through the gateway's plug to the agent system, which looks it up
    from gateway.agents import plug
    from voice import ports

    asked: list[str] = []

    def calls(session: str) -> None:
        asked.append(session)
        return None

    system, _ = make_system(tmp_path, calls=calls)
    factory = plug(system.agent)
    with pytest.raises(ResumeError, match="cannot resume 'call-a': no such call"):
        factory(ports.CallInfo("call-b", "twilio", "+15005550006", resume_from="call-a"))
    factory(ports.CallInfo("call-c", "twilio", "+15005550006"))  # a new call: no lookup
    assert asked == ["call-a"]
    system.close()
