"""A LiveKit call that survives its worker: two ``voxgate livekit-worker`` processes with the
front-desk agents on one PostgreSQL event log and a real LiveKit server; the worker that
answered the call is SIGKILLed mid-call; the other sees the room lost its agent,
dispatches a new one, and the call carries on from the log ("Sorry, we were cut off.")."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.evaluation.livekit_caller import Caller
from gateway.evaluation.speech import load_prompt, word_error_rate
from gateway.livekit.resume import ALIVE_ATTRIBUTE, STALE_S, alive, resume_from
from gateway.servers.livekit import WorkerProcess as Worker
from gateway.servers.livekit import start_worker, wait_registered

if TYPE_CHECKING:
    from gateway.servers.livekit import LiveKitServer

pytest_plugins = ("tests.livekit_server",)

AGENT = "resume-test"  # explicit dispatch: no other test's worker answers these rooms
PROMPT = "agent-pass"


def test_an_agent_is_dead_once_its_heartbeat_is_stale() -> None:
    now = 1000.0
    assert alive({ALIVE_ATTRIBUTE: str(now - 1)}, now)
    assert not alive({ALIVE_ATTRIBUTE: str(now - STALE_S - 0.1)}, now)
    assert alive({}, now)  # not stamped yet: just joined
    assert alive({ALIVE_ATTRIBUTE: "garbage"}, now)  # never cut a call over a bad stamp


def test_resume_from_reads_the_dispatch_metadata() -> None:
    assert resume_from('{"resume_from": "abc123"}') == "abc123"
    assert resume_from("") is None
    assert resume_from("not json") is None
    assert resume_from('["resume_from"]') is None
    assert resume_from('{"resume_from": 7}') is None


@pytest.fixture
def pair(livekit_server: LiveKitServer, pg_url: str, tmp_path: Path,
         ) -> Iterator[dict[str, Worker]]:
    env = {"VOXGATE_DATABASE_URL": pg_url, "VOXGATE_AGENT": "supervisor"}
    started = {n: start_worker(livekit_server, n, tmp_path / n, "--agent-name", AGENT, env=env)
               for n in ("wa", "wb")}
    try:
        for worker in started.values():
            wait_registered(worker)
        yield started
    finally:
        for worker in started.values():
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(30)


@pytest.mark.slow
async def test_a_call_carries_on_when_its_worker_dies(livekit_server: LiveKitServer,
                                                     pair: dict[str, Worker]) -> None:
    room = f"call-{uuid.uuid4().hex[:8]}"
    caller = Caller(livekit_server.url, livekit_server.token(f"caller-{room}", room, AGENT))
    await caller.join()
    try:
        first = await caller.wait_for_agent(90)
        heard = caller.heard
        await caller.wait_for("greeting", lambda: heard.audible_at and heard.of_type(
            "tts.started"), 60)
        await caller.wait_for("greeting played", lambda: heard.of_type("agent.state") and
                              heard.of_type("agent.state")[-1].get("state") == "listening", 30)
        old_agent = caller.agent
        pair[first].proc.send_signal(signal.SIGKILL)
        pair[first].proc.wait(30)

        def new_agent() -> str | None:
            agents = [p for p in caller.room.remote_participants.values()
                      if "voxgate.worker" in p.attributes and p is not old_agent]
            return str(agents[0].attributes["voxgate.worker"]) if agents else None

        second = await caller.wait_for("a new agent", new_agent, 60)
        assert second != first
        # the new agent carries the call on from the log, then hears the caller
        sorry = await caller.wait_for("the apology", lambda: [
            t for s, t in heard.transcriptions if s == "agent" and "cut off" in t], 60)
        assert sorry
        await caller.wait_for("listening again", lambda: heard.of_type("agent.state")[-1].get(
            "state") == "listening", 60)
        pcm, text = load_prompt(PROMPT)
        turns = len(heard.of_type("stt.final"))
        caller.say(pcm)
        await caller.wait_for("caller's words", lambda: word_error_rate(
            text, heard.finals(turns) or "-") <= 0.2, 60)
    finally:
        await caller.leave()
    assert "lost its agent" in pair[second].text()
