"""Faults during live calls, through the real gateway on a loopback port with the real
models and the front-desk agents:

* a tool whose service never finishes answering: the tool's time box fires, the fallback
  answers, and the call goes on to its next turn;
* the caller vanishing mid-reply (the TCP connection dropped without a WebSocket close
  frame) on both protocols: the session ends with a clear reason and everything it held
  is freed -- no session, no task, no STT/TTS job, no file descriptor left behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import Segment, run_call
from gateway.server import ServerThread
from orchestration.agents.system import AgentSystem
from orchestration.log.events import EventBus
from voice.audio import resample, ulaw_encode
from voice.tts import PiperTTS

pytestmark = pytest.mark.slow

ADMIN = "faults-admin-token-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}


class StallingHealth:
    """A health endpoint on 127.0.0.1 that answers its first probe and then stalls: it
    sends the headers and then one byte every half second, so the client's per-read
    timeout never fires and only the tool's time box can end the wait."""

    def __init__(self) -> None:
        self.hits = 0
        self.abandoned = 0  # stalled answers whose client hung up (the time box closed it)
        self.stop = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                if self.path == "/website" or owner.hits == 1:
                    body = b'{"status": "ok", "latency_ms": 80}'
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    while not owner.stop.wait(0.5):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    owner.abandoned += 1  # the prober gave up and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StallingHealth:
        self.thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def health() -> Iterator[StallingHealth]:
    with StallingHealth() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            health: StallingHealth) -> Iterator[ServerThread]:
    data = tmp_path_factory.mktemp("data")
    settings = Settings(data_dir=data, admin_token=ADMIN)
    settings.voice.turn.reprompt_after_s = 15
    bus = EventBus()
    services = {"payments": {"aliases": ["payment"], "url": f"{health.url}/payments"},
                "website": {"aliases": ["web site", "site"], "url": f"{health.url}/website"}}
    system = AgentSystem(bus, data, overrides={"ops": {"services": services}})
    with ServerThread(create_app(settings, agent_factory=system.agent, bus=bus)) as running:
        yield running


def speech(tts: PiperTTS, text: str) -> Segment:
    pcm = resample(tts.synthesize_sync(text), tts.sample_rate, 16000)
    return Segment(pcm, after_agent_quiet_ms=600, wait_limit_s=40)


def test_hanging_tool_times_out_falls_back_and_the_call_goes_on(
        gateway: ServerThread, health: StallingHealth, piper_joe: PiperTTS) -> None:
    script = [speech(piper_joe, "What's the status of the payment service?"),
              speech(piper_joe, "Is the payment service up?"),
              speech(piper_joe, "What's the status of the website?")]
    result = asyncio.run(run_call(None, "twilio", gateway.url, script=script, tail_s=8.0,
                                  max_call_s=120, admin_token=ADMIN))
    said = " ".join(u.text for u in result.agent_replies())
    heard = " | ".join(u.text for u in result.user_transcripts())
    assert "Payments is up." in said, (said, heard)
    failed = [e.event.data for e in result.events_of("tool.failed")]
    assert failed and failed[0]["tool"] == "ops.probe", failed
    assert "no answer within 3 s" in failed[0]["error"], failed  # the time box, not httpx
    assert result.events_of("tool.fallback")[0].event.data["to"] == "ops.cached"
    assert "I could not reach payments just now. Its last known status" in said, said
    # the call went on: the next question was answered from a live probe of another service
    assert "Website is up." in said, (said, heard)
    assert result.ended_by == "caller"
    # the stalled request was closed when the time box fired, not left open
    for _ in range(40):
        if health.abandoned:
            break
        time.sleep(0.1)
    assert health.abandoned == 1


# --- the caller vanishes mid-reply ---------------------------------------------------


def debug(server: ServerThread) -> dict[str, Any]:
    resp = httpx.get(f"{server.url}/api/debug/runtime", headers=HEADERS, timeout=10)
    resp.raise_for_status()
    data: dict[str, Any] = resp.json()
    return data


async def open_twilio(url: str, call_sid: str) -> ClientConnection:
    sock = await connect(f"{url}/ws/twilio")
    start = {"event": "start", "sequenceNumber": "1", "streamSid": "MZvanish",
             "start": {"streamSid": "MZvanish", "accountSid": "AC1", "callSid": call_sid,
                       "tracks": ["inbound"], "customParameters": {},
                       "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                       "channels": 1}}}
    await sock.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await sock.send(json.dumps(start))
    return sock


def silence_frame(protocol: str, n: int) -> str | bytes:
    if protocol == "browser":
        return bytes(640)
    payload = base64.b64encode(ulaw_encode(bytes(320))).decode()
    return json.dumps({"event": "media", "sequenceNumber": str(n + 2), "streamSid": "MZvanish",
                       "media": {"track": "inbound", "chunk": str(n + 1),
                                 "timestamp": str(n * 20), "payload": payload}})


async def vanish_mid_reply(url: str, protocol: str, call_sid: str) -> tuple[float, str | None]:
    """Place a call, stream silence, and drop the TCP connection once the agent's greeting
    audio is arriving. Returns when (monotonic) the connection was dropped, and the
    session id (the browser protocol names it)."""
    ws_url = url.replace("http://", "ws://")
    if protocol == "twilio":
        sock = await open_twilio(ws_url, call_sid)
    else:
        sock = await connect(f"{ws_url}/ws/browser")
        await sock.send(json.dumps({"type": "start"}))
    audio = 0
    n = 0
    session_id = None
    async with asyncio.timeout(60):
        while audio < 3:  # a few chunks of agent audio: the agent is speaking
            await sock.send(silence_frame(protocol, n))
            n += 1
            try:
                message = await asyncio.wait_for(sock.recv(), 0.02)
            except TimeoutError:
                continue
            if isinstance(message, bytes) or '"media"' in message:
                audio += 1
            elif '"session"' in message:
                session_id = json.loads(message)["session_id"]
    sock.transport.abort()  # no close frame, no closing handshake: the line just goes dead
    return time.monotonic(), session_id


def settle(server: ServerThread, before: dict[str, Any], timeout_s: float = 20.0
           ) -> dict[str, Any]:
    """The debug figures once the gateway is back where it was (or as they are at the
    deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = debug(server)
        same = all(now[k] == before[k] for k in ("sessions", "tasks", "fds", "threads"))
        if (same and now["pools"] == before["pools"]) or time.monotonic() > deadline:
            return now
        time.sleep(0.25)


def ended_summary(server: ServerThread, call_sid: str | None, session_id: str | None
                ) -> dict[str, Any]:
    sessions: list[dict[str, Any]] = httpx.get(
        f"{server.url}/api/sessions", headers=HEADERS, params={"status": "ended"}, timeout=10
    ).json()
    found = [s for s in sessions if s["id"] == session_id or
             (call_sid is not None and s["call_sid"] == call_sid)]
    assert found, sessions[:3]
    return found[0]


@pytest.mark.parametrize("protocol", ["twilio", "browser"])
def test_caller_vanishing_mid_reply_ends_the_session_and_frees_everything(
        gateway: ServerThread, protocol: str) -> None:
    # warm-up: one call of the same kind, so lazily created pools and threads exist
    asyncio.run(vanish_mid_reply(gateway.url, protocol, "CA" + uuid.uuid4().hex))
    before = settle(gateway, {"sessions": 0, "tasks": -1, "fds": -1, "threads": -1,
                              "pools": {}}, timeout_s=15)
    assert before["sessions"] == 0, before
    call_sid = "CA" + uuid.uuid4().hex
    dropped, session_id = asyncio.run(vanish_mid_reply(gateway.url, protocol, call_sid))
    after = settle(gateway, before)
    freed_s = time.monotonic() - dropped
    assert after["sessions"] == 0 and not gateway.runtime.sessions
    assert after["task_names"] == before["task_names"], (before["task_names"],
                                                        after["task_names"])
    assert after["fds"] == before["fds"], (before["fd_kinds"], after["fd_kinds"])
    assert after["threads"] == before["threads"], (before["thread_names"],
                                                  after["thread_names"])
    assert all(p == {"active": 0, "queued": 0} for p in after["pools"].values()), after
    assert freed_s < 10, freed_s
    summary = ended_summary(gateway, call_sid if protocol == "twilio" else None, session_id)
    assert summary["end_reason"] == "caller vanished (connection lost, no close frame)"
