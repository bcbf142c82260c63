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
from gateway.servers.livekit import WorkerProcess as Worker
from gateway.servers.livekit import start_worker, wait_registered

if TYPE_CHECKING:
    from gateway.servers.livekit import LiveKitServer

pytestmark = pytest.mark.slow
pytest_plugins = ("tests.livekit_server",)

AGENT = "resume-test"  # explicit dispatch: no other test's worker answers these rooms
PROMPT = "agent-pass"


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
        caller.say(pcm)
        final = await caller.wait_for("caller's words", lambda: heard.of_type("stt.final"), 60)
        assert word_error_rate(text, final[-1]["text"]) <= 0.2, final
    finally:
        await caller.leave()
    assert "lost its agent" in pair[second].text()
