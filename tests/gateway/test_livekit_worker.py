"""``voxgate livekit-worker`` against a real LiveKit server on loopback (tests/livekit_server.py):
real worker processes, a caller on the ``livekit`` SDK publishing real speech, WebRTC
media both ways through the server.

Each worker takes one call at a time (``--capacity 1``), so which worker gets a call is
decided by the load the workers report, not by the server's dice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gateway.evaluation.livekit_caller import Caller
from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.servers.livekit import WorkerProcess as Worker
from gateway.servers.livekit import start_worker, wait_available, wait_registered

if TYPE_CHECKING:
    from gateway.servers.livekit import LiveKitServer

pytestmark = pytest.mark.slow
# the session's LiveKit server fixture (tests/livekit_server.py)
pytest_plugins = ("tests.livekit_server",)

PROMPT = "agent-pass"  # "Please enter your password followed by the pound key."


@pytest.fixture(scope="module")
def workers(livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[dict[str, Worker]]:
    root = tmp_path_factory.mktemp("lk-workers")
    started = {n: start_worker(livekit_server, n, root / n) for n in ("w1", "w2")}
    try:
        for worker in started.values():
            wait_registered(worker)
        yield started
    finally:
        for worker in started.values():
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(30)


def heard_as(text: str, heard: str) -> bool:
    """Whether ``heard`` is ``text`` but for a word in five (whisper tiny.en on a prompt)."""
    return bool(heard) and word_error_rate(text, heard) <= 0.2


def room_name() -> str:
    return f"call-{uuid.uuid4().hex[:8]}"


async def join(server: LiveKitServer, room: str, agent_name: str = "") -> Caller:
    caller = Caller(server.url, server.token(f"caller-{room}", room, agent_name))
    await caller.join()
    return caller


async def test_a_call_through_livekit(livekit_server: LiveKitServer,
                                      workers: dict[str, Worker]) -> None:
    pcm, text = load_prompt(PROMPT)
    caller = await join(livekit_server, room_name())
    try:
        assert await caller.wait_for_agent() in workers
        heard = caller.heard
        # the greeting, as audio and as the agent's transcription
        await caller.wait_for("greeting", lambda: heard.audible_at and heard.of_type(
            "tts.started"), 60)
        await caller.wait_for("greeting played", lambda: heard.of_type("agent.state") and
                              heard.of_type("agent.state")[-1].get("state") == "listening", 30)
        caller.say(pcm)
        await caller.wait_for("caller's words", lambda: heard_as(text, heard.finals()), 60)

        # the answer, sentence by sentence (its first sentence cut at a clause for speed)
        def answer() -> str:
            spoken = heard.spoken("agent")
            start = spoken.rfind("I heard:")
            end = spoken.find("What else", start)
            return spoken[start + 8:end] if 0 <= start < end else ""

        await caller.wait_for("the answer", lambda: heard_as(text, answer()), 60)
        await caller.wait_for("the caller's transcription", lambda: heard_as(
            text, heard.spoken("caller")), 30)
        # and the answer came as audio through the room, after the caller spoke
        await caller.wait_for("answer audio", lambda: [
            t for t in heard.audible_at if t > caller.spoke_until], 30)
    finally:
        await caller.leave()


async def test_barge_in_through_the_room(livekit_server: LiveKitServer,
                                         workers: dict[str, Worker]) -> None:
    pcm, text = load_prompt(PROMPT)
    caller = await join(livekit_server, room_name())
    try:
        await caller.wait_for_agent()
        heard = caller.heard
        # the caller talks over the greeting as soon as they hear it
        await caller.wait_for("greeting audio", lambda: heard.audible_at, 60)
        caller.say(pcm)
        cut = await caller.wait_for("the greeting cut", lambda: heard.of_type(
            "tts.interrupted"), 30)
        assert cut[0]["cleared"] is True  # the agent's queued audio was dropped
        greeting = " ".join(e["text"] for e in heard.of_type("tts.started"))
        assert cut[0]["played_text"] != greeting
        await caller.wait_for("caller's words", lambda: heard_as(text, heard.finals()), 60)
    finally:
        await caller.leave()


async def test_the_agent_hangs_up_and_the_room_goes(livekit_server: LiveKitServer,
                                                    workers: dict[str, Worker]) -> None:
    wait_available(*workers.values())
    pcm, _ = load_prompt("vm-goodbye")  # "Goodbye": the basic agent says goodbye, hangs up
    caller = await join(livekit_server, room_name())
    try:
        await caller.wait_for_agent()
        heard = caller.heard
        await caller.wait_for("greeting played", lambda: heard.of_type("agent.state") and
                              heard.of_type("agent.state")[-1].get("state") == "listening", 60)
        caller.say(pcm)
        hangup = await caller.wait_for("the hang-up", lambda: heard.of_type("call.hangup"), 60)
        assert hangup[0]["reason"] == "caller said goodbye"
        # the worker deletes the room: the caller is disconnected by the server
        await caller.wait_for("the room closed", lambda: not caller.room.isconnected(), 30)
    finally:
        await caller.leave()


async def test_calls_spread_over_two_workers_and_survive_one(
        livekit_server: LiveKitServer, workers: dict[str, Worker]) -> None:
    wait_available(*workers.values())
    first = await join(livekit_server, room_name())
    second: Caller | None = None
    try:
        took_first = await first.wait_for_agent()
        # the first worker is full: the second call must go to the other one
        second = await join(livekit_server, room_name())
        took_second = await second.wait_for_agent()
        assert {took_first, took_second} == set(workers)
    finally:
        await first.leave()
        if second is not None:
            await second.leave()
    killed, survivor = workers[took_first], workers[took_second]
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(30)
    for _ in range(2):  # new calls, one after the other, all to the survivor
        wait_available(survivor)
        caller = await join(livekit_server, room_name())
        try:
            assert await caller.wait_for_agent() == survivor.name
            await caller.wait_for("greeting", lambda c=caller: c.heard.audible_at, 60)
        finally:
            await caller.leave()


async def test_sigterm_drains_a_worker(livekit_server: LiveKitServer,
                                       tmp_path: Path) -> None:
    """A worker of its own (explicit dispatch by agent name, so the module's workers keep
    out): SIGTERM while a call is live; the call goes on to its end, then the worker
    exits 0."""
    pcm, text = load_prompt(PROMPT)
    worker = start_worker(livekit_server, "w-drain", tmp_path, "--agent-name", "drain-test")
    try:
        wait_registered(worker)
        caller = await join(livekit_server, room_name(), agent_name="drain-test")
        try:
            assert await caller.wait_for_agent() == "w-drain"
            heard = caller.heard
            await caller.wait_for("greeting", lambda: heard.audible_at, 60)
            worker.proc.send_signal(signal.SIGTERM)
            caller.say(pcm)
            await caller.wait_for("caller's words", lambda: heard_as(text, heard.finals()), 60)
            await caller.wait_for("answer audio", lambda: [
                t for t in heard.audible_at if t > caller.spoke_until], 30)
            assert worker.proc.poll() is None  # still there for its live call
        finally:
            await caller.leave()
        assert worker.proc.wait(60) == 0, worker.text()[-3000:]
        assert "draining" in worker.text()
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(30)


async def _drain_at_the_deadline(server: LiveKitServer, folder: Path, budget_s: str,
                                 until: str | None) -> tuple[Worker, list[dict[str, Any]], Caller]:
    """A worker with ``--drain-timeout 1`` and ``budget_s`` for the goodbyes gets SIGTERM
    while its call listens; returns, the worker exited 0, once the caller got ``until``
    (if given)."""
    worker = start_worker(server, "w-deadline", folder, "--agent-name", "deadline-test",
                          "--drain-timeout", "1", env={"VOXGATE_DRAIN_TIMEOUT_S": budget_s})
    try:
        wait_registered(worker)
        caller = await join(server, room_name(), agent_name="deadline-test")
        try:
            await caller.wait_for_agent()
            heard = caller.heard
            await caller.wait_for("greeting played", lambda: heard.of_type("agent.state") and
                                  heard.of_type("agent.state")[-1].get("state") == "listening",
                                  60)
            worker.proc.send_signal(signal.SIGTERM)
            found: list[dict[str, Any]] = []
            try:
                if until is not None:
                    found = await caller.wait_for(until, lambda: heard.of_type(until), 30)
                else:  # the caller stays on the line until the worker is gone
                    await asyncio.to_thread(worker.proc.wait, 60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nworker: {worker.text()[-4000:]}") from None
        finally:
            await caller.leave()
        assert worker.proc.wait(60) == 0, worker.text()[-3000:]
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(30)
    return worker, found, caller


async def test_a_call_still_live_at_the_drain_deadline_hears_goodbye(
        livekit_server: LiveKitServer, tmp_path: Path) -> None:
    # 30 s for the goodbye (~4.5 s of speech; 5.5 s from SIGTERM to the hang-up on a quiet
    # machine) so that a loaded CI machine does not cut it; the default is 10 s
    worker, hangup, caller = await _drain_at_the_deadline(livekit_server, tmp_path, "30",
                                                          "call.hangup")
    assert hangup[0]["reason"] == "worker draining"
    said = " ".join(t for s, t in caller.heard.transcriptions if s == "agent")
    assert "closing for maintenance" in said, said
    assert "0 call(s) ended without one" in worker.text()


async def test_a_goodbye_longer_than_its_budget_is_cut_and_the_call_ended(
        livekit_server: LiveKitServer, tmp_path: Path) -> None:
    # the worker leaves the room right after: whether the caller's app still gets the last
    # events is up to the room, so the call's end is read from the worker's event log
    worker, _, caller = await _drain_at_the_deadline(livekit_server, tmp_path, "0.5", None)
    assert "1 call(s) ended without one" in worker.text()
    assert not caller.heard.of_type("call.hangup")
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "events.db")) as db:
        ended = [json.loads(data) for (data,) in db.execute(
            "SELECT data FROM events WHERE type = 'session.ended'")]
    assert [e["reason"] for e in ended] == ["worker draining: no goodbye in time"]
