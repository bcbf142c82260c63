"""SIGTERM drains a real `voxgate serve`: new calls are refused, live calls on both
protocols hear a spoken goodbye and are hung up, and the process exits 0 within the
drain bound (docs/voice.md, "Shutdown")."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.evaluation.client import CallResult, Segment, run_call
from gateway.evaluation.speech import load_prompt
from gateway.servers.serve_process import ADMIN_TOKEN, ServeProcess
from voice.stt import WhisperSTT

pytestmark = pytest.mark.slow

# long enough for a goodbye on a busy 2-core machine (piper took 6 s a sentence under load)
DRAIN_S = 15.0
GOODBYE = "This line is closing for maintenance. Goodbye!"


async def live_call(url: str, protocol: str) -> CallResult:
    """A caller who says one thing and then stays on the line, silent, for a long time."""
    pcm, _ = load_prompt("conf-locked")
    script = [Segment(pcm, after_agent_quiet_ms=600, wait_limit_s=20)]
    return await run_call(None, protocol, url, script=script, tail_s=60.0,  # type: ignore[arg-type]
                          hangup_after_reply=False, max_call_s=90, admin_token=ADMIN_TOKEN)


async def deaf_call(url: str) -> list[dict[str, Any]]:
    """A browser caller whose speaker never reports a mark played: the session waits for
    its goodbye's marks until the drain's deadline cuts it. Returns the text messages."""
    got: list[dict[str, Any]] = []
    async with connect(f"{url}/ws/browser") as sock:
        await sock.send(json.dumps({"type": "start"}))
        silence = bytes(640)

        async def talk() -> None:
            while True:  # a line is never quiet: 20 ms of silence every 20 ms
                await sock.send(silence)
                await asyncio.sleep(0.02)

        talker = asyncio.create_task(talk())
        try:
            async for message in sock:
                if isinstance(message, str):
                    got.append(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            talker.cancel()
    return got


def played_after_goodbye(result: CallResult) -> bytes:
    """What the caller's speaker played once the goodbye was on its way."""
    t = next(u.t for u in result.agent_replies() if u.text == GOODBYE)
    return result.agent_audio[int(t * 16000) * 2:]


async def refused_ws(url: str) -> tuple[int | None, list[str]]:
    """Open a WebSocket and read what comes back until the server closes it: a draining
    gateway refuses at once, before the client's first message."""
    got: list[str] = []
    try:
        async with connect(url, open_timeout=5) as sock:
            async with asyncio.timeout(5):
                async for message in sock:
                    got.append(str(message))
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd else None), got
    return sock.close_code, got


@dataclass
class Drained:
    health: httpx.Response
    voice: httpx.Response  # POST /twilio/voice during the drain
    browser_refusal: tuple[int | None, list[str]]
    twilio_refusal: tuple[int | None, list[str]]
    calls: list[CallResult]
    deaf: list[dict[str, Any]]
    exit_code: int
    exit_after_s: float


async def drain_scenario(gw: ServeProcess) -> Drained:
    calls = [asyncio.create_task(live_call(gw.url, p)) for p in ("twilio", "browser")]
    deaf = asyncio.create_task(deaf_call(gw.url.replace("http://", "ws://")))
    async with httpx.AsyncClient(base_url=gw.url, headers=gw.headers) as http:
        # three live sessions, two of them answered once and now listening
        for _ in range(600):
            sessions = (await http.get("/api/sessions", params={"status": "live"})).json()
            answered = [s for s in sessions if s["turns"] >= 1]
            if len(sessions) == 3 and len(answered) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the calls did not get going: {sessions}")
        await asyncio.sleep(1.0)
        signalled = time.monotonic()
        gw.terminate()
        await asyncio.sleep(0.5)
        health = await http.get("/healthz")
        voice = await http.post("/twilio/voice", data={"From": "+15550001111"})
    ws = gw.url.replace("http://", "ws://")
    browser_refusal = await refused_ws(f"{ws}/ws/browser")
    twilio_refusal = await refused_ws(f"{ws}/ws/twilio")
    results = await asyncio.gather(*calls)
    deaf_said = await deaf
    assert gw.proc is not None
    exit_code = await asyncio.to_thread(gw.proc.wait, DRAIN_S + 20)
    return Drained(health, voice, browser_refusal, twilio_refusal, list(results), deaf_said,
                   exit_code, time.monotonic() - signalled)


def test_sigterm_refuses_new_calls_says_goodbye_and_exits_0(
        tmp_path: Path, whisper_tiny: WhisperSTT) -> None:
    gw = ServeProcess(tmp_path, VOXGATE_AGENT="basic", VOXGATE_DRAIN_TIMEOUT_S=str(DRAIN_S),
                      VOXGATE_DRAIN_GOODBYE_TEXT=GOODBYE,
                      VOXGATE_VOICE__TURN__REPROMPT_AFTER_S="60")
    with gw:
        out = asyncio.run(drain_scenario(gw))
    assert out.health.status_code == 503 and out.health.json()["status"] == "draining"
    assert '<Reject reason="busy" />' in out.voice.text, out.voice.text
    code, said = out.browser_refusal
    assert code == 1012
    assert json.loads(said[0]) == {"type": "error", "code": "draining",
                                   "message": "the gateway is shutting down; call again"}
    assert out.twilio_refusal[0] == 1012
    for result in out.calls:
        ended = result.events_of("session.ended")[0].event.data
        assert ended["reason"] == "agent hung up: server shutting down", ended
        assert GOODBYE in [u.text for u in result.agent_replies()]
        assert result.ended_by == "agent"
        # heard, not just sent: whisper finds the goodbye in what the caller's speaker played
        heard = whisper_tiny.transcribe_sync(played_after_goodbye(result)).text
        assert "maintenance" in heard.lower(), heard
    # the deaf caller was sent the goodbye, then cut at the deadline with a clear reason
    replies = [m["event"]["data"]["text"] for m in out.deaf
               if m.get("type") == "event" and m["event"]["type"] == "agent.reply"]
    assert GOODBYE in replies
    assert out.deaf[-1] == {"type": "end", "reason": "server shutting down: no goodbye in time"}
    assert out.exit_code == 0, gw.log_tail()
    # the drain's bound, plus uvicorn's own shutdown and the interpreter's exit
    assert DRAIN_S <= out.exit_after_s < DRAIN_S + 10, out.exit_after_s
