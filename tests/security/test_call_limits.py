"""Limits on calls and credentials, against real servers in production mode: per client
address, per widget token and per phone caller. A refused attempt starts no session and
leaves a call in progress alone. The gateway trusts X-Forwarded-For from 127.0.0.1 here,
so each test speaks for client addresses of its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.app import create_app
from gateway.auth import Auth
from gateway.limits import CLOSE_LIMITED
from gateway.server import ServerThread
from orchestration.log.events import Event, EventRecorder
from tests.gateway.test_bad_input import closed_with, start_message
from tests.security.test_auth import ADMIN, secure_settings, signed

pytestmark = pytest.mark.slow

BEARER = {"authorization": f"Bearer {ADMIN}"}
LIMITS: dict[str, Any] = {
    "calls_per_minute_per_address": 4,
    "live_calls_per_address": 1,
    "calls_per_minute_per_token": 3,
    "live_calls_per_token": 1,
    "calls_per_minute_per_caller": 2,
    "live_calls_per_caller": 1,
    "tokens_per_minute_per_address": 3,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(
        tmp_path_factory.mktemp("data"), agent="basic", trusted_proxies=["127.0.0.1"],
        limits=LIMITS,
    )
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture
def recorder(server: ServerThread) -> Iterator[EventRecorder]:
    rec = EventRecorder(server.runtime.bus)
    yield rec
    rec.close()


MINTERS = (f"198.51.100.{i}" for i in itertools.count(1))  # each mints once: no limit


def mint(server: ServerThread) -> str:
    headers = {**BEARER, "x-forwarded-for": next(MINTERS)}
    response = httpx.post(f"{server.url}/api/tokens", json={}, headers=headers)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def browser_url(server: ServerThread, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/browser?token={token}"


@asynccontextmanager
async def live_call(server: ServerThread, token: str, address: str
                    ) -> AsyncIterator[ClientConnection]:
    """A browser call that has started (the server said ``session``)."""
    headers = {"x-forwarded-for": address}
    async with connect(browser_url(server, token), additional_headers=headers) as sock:
        await sock.send(json.dumps({"type": "start"}))
        async with asyncio.timeout(10):
            while json.loads(await sock.recv())["type"] != "session":
                pass
        yield sock
        await sock.send(json.dumps({"type": "stop"}))
        await closed_with(sock)
    # the server gives the call's place back just after its close reaches us
    await asyncio.to_thread(settle, server)


def settle(server: ServerThread) -> None:
    deadline = time.monotonic() + 5.0
    while len(server.app.state.limits.live_by_address) and time.monotonic() < deadline:
        time.sleep(0.02)


async def attempt(server: ServerThread, token: str, address: str) -> tuple[int | None, str]:
    """Open a call and hang up; the close code and reason the server ended it with."""
    headers = {"x-forwarded-for": address}
    async with connect(browser_url(server, token), additional_headers=headers) as sock:
        with contextlib.suppress(ConnectionClosed):  # a refused call is closed at once
            await sock.send(json.dumps({"type": "start"}))
            await sock.send(json.dumps({"type": "stop"}))
        code, _ = await closed_with(sock)
        return code, sock.close_reason or ""


async def answered(sock: ClientConnection, text: str) -> str:
    """Say ``text`` as a typed turn; the agent's reply that echoes it (the echo agent)."""
    await sock.send(json.dumps({"type": "text", "text": text}))
    async with asyncio.timeout(30):
        while True:
            message = await sock.recv()
            if isinstance(message, str):
                parsed = json.loads(message)
                if parsed["type"] == "event" and parsed["event"]["type"] == "agent.reply":
                    reply = str(parsed["event"]["data"]["text"])
                    if text in reply:
                        return reply


def test_tokens_minted_in_the_same_second_differ(tmp_path: Path) -> None:
    """Or two page views would share one token's limits."""
    auth = Auth(secure_settings(tmp_path))
    assert auth.mint_widget_token("x")[0] != auth.mint_widget_token("x")[0]


def test_live_calls_per_address_refuse_a_second_call_and_spare_the_first(
    server: ServerThread, recorder: EventRecorder
) -> None:
    first_token, second_token = mint(server), mint(server)

    async def scenario() -> tuple[tuple[int | None, str], str, tuple[int | None, str]]:
        async with live_call(server, first_token, "203.0.113.10") as call:
            refused = await attempt(server, second_token, "203.0.113.10")
            reply = await answered(call, "hello there")  # the first call goes on
        after = await attempt(server, second_token, "203.0.113.10")  # its slot is free again
        return refused, reply, after

    refused, reply, after = asyncio.run(scenario())
    assert refused == (CLOSE_LIMITED, "too many live calls from this address (1)")
    assert "hello there" in reply
    assert after[0] == 1000
    assert len(recorder.of_type("session.started")) == 2, "the refused attempt started one"


def test_call_attempts_per_address_per_minute(
    server: ServerThread, recorder: EventRecorder
) -> None:
    async def scenario() -> list[tuple[int | None, str]]:
        codes = [await attempt(server, mint(server), "203.0.113.20") for _ in range(5)]
        codes.append(await attempt(server, mint(server), "203.0.113.21"))  # someone else
        return codes

    codes = asyncio.run(scenario())
    assert [c for c, _ in codes] == [1000] * 4 + [CLOSE_LIMITED, 1000]
    assert codes[4][1].startswith(
        "too many call attempts from this address (4 a minute); try again in ")
    assert len(recorder.of_type("session.started")) == 5


def test_bad_tokens_count_against_the_address(server: ServerThread) -> None:
    async def scenario() -> list[int | None]:
        return [(await attempt(server, "garbage", "203.0.113.30"))[0] for _ in range(5)]

    assert asyncio.run(scenario()) == [4401] * 4 + [CLOSE_LIMITED]


def test_a_widget_token_has_its_own_caps(server: ServerThread, recorder: EventRecorder) -> None:
    shared, other = mint(server), mint(server)

    async def scenario() -> list[tuple[int | None, str]]:
        results = []
        async with live_call(server, shared, "203.0.113.40"):  # attempt 1 of the token
            results.append(await attempt(server, shared, "203.0.113.41"))  # 2: live cap
            async with live_call(server, other, "203.0.113.42") as call:
                assert "still here" in await answered(call, "still here")
        results.append(await attempt(server, shared, "203.0.113.43"))  # 3: fine
        results.append(await attempt(server, shared, "203.0.113.44"))  # 4: over 3 a minute
        return results

    live, ok, rate = asyncio.run(scenario())
    assert live == (CLOSE_LIMITED, "too many live calls with this widget token (1)")
    assert ok[0] == 1000
    assert rate[0] == CLOSE_LIMITED
    assert rate[1].startswith("too many calls with this widget token (3 a minute)")
    assert len(recorder.of_type("session.started")) == 3


def test_minting_credentials_is_limited_per_address(server: ServerThread) -> None:
    def post(path: str, address: str, auth: bool = True) -> httpx.Response:
        headers = {"x-forwarded-for": address, **(BEARER if auth else {})}
        return httpx.post(f"{server.url}{path}", json={}, headers=headers)

    statuses = [post("/api/tokens", "203.0.113.50").status_code for _ in range(2)]
    statuses.append(post("/api/ws-ticket", "203.0.113.50").status_code)  # the same budget
    refused = post("/api/tokens", "203.0.113.50")
    assert statuses == [200, 200, 200] and refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert "too many credential requests from this address" in refused.json()["detail"]
    assert post("/api/tokens", "203.0.113.51").status_code == 200
    # guessing the admin token costs the same budget
    guesses = [post("/api/tokens", "203.0.113.52", auth=False).status_code for _ in range(4)]
    assert guesses == [401, 401, 401, 429]


def twilio_voice(server: ServerThread, caller: str) -> str:
    url = f"{server.url}/twilio/voice"
    form = {"From": caller, "CallSid": "CA-" + caller}
    response = httpx.post(url, data=form, headers={"x-twilio-signature": signed(url, form)})
    assert response.status_code == 200  # Twilio gets TwiML either way, never an error
    return response.text


BUSY = '<Reject reason="busy" />'


def test_phone_callers_are_limited_by_number(server: ServerThread) -> None:
    answers = [twilio_voice(server, "+15550007001") for _ in range(3)]
    assert ["<Stream" in a for a in answers] == [True, True, False]
    assert BUSY in answers[2]
    assert "<Stream" in twilio_voice(server, "+15550007002"), "another caller is let in"


def test_a_phone_caller_with_a_live_call_gets_busy(
    server: ServerThread, recorder: EventRecorder
) -> None:
    stream_url = server.url.replace("http://", "ws://") + "/ws/twilio"
    start = json.loads(start_message(call_sid="CA-live"))
    start["start"]["customParameters"]["caller"] = "+15550007003"

    async def scenario() -> str:
        loop, started = asyncio.get_running_loop(), asyncio.Event()

        def on_event(event: Event) -> None:
            if event.type == "session.started":
                loop.call_soon_threadsafe(started.set)

        unsubscribe = server.runtime.bus.subscribe(on_event)
        headers = {"x-twilio-signature": signed(stream_url, {})}
        try:
            async with connect(stream_url, additional_headers=headers) as sock:
                await sock.send(json.dumps(start))
                await asyncio.wait_for(started.wait(), 10)
                return await asyncio.to_thread(twilio_voice, server, "+15550007003")
        finally:
            unsubscribe()

    assert BUSY in asyncio.run(scenario())
    assert len(recorder.of_type("session.started")) == 1


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(
        tmp_path_factory.mktemp("data"), agent="basic", trusted_proxies=["192.0.2.1"],
        limits={"tokens_per_minute_per_address": 2},
    )
    with ServerThread(create_app(settings)) as running:
        yield running


def refusals(server: ServerThread) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", headers=BEARER).text
    return {sample.labels["limit"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "voxgate_limit_refusals" for sample in family.samples
            if sample.name == "voxgate_limit_refusals_total"}


def test_refusals_are_counted_on_metrics_by_limit(server: ServerThread) -> None:
    before = refusals(server)
    assert set(before) >= {"calls_per_address", "live_calls_per_address", "calls_per_caller",
                           "tokens_per_address", "demo_pages_per_address"}
    headers = {"x-forwarded-for": "203.0.113.60", **BEARER}
    statuses = [httpx.post(f"{server.url}/api/tokens", json={}, headers=headers).status_code
                for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    answers = [twilio_voice(server, "+15550007060") for _ in range(3)]
    assert BUSY in answers[2]
    after = refusals(server)
    assert after["tokens_per_address"] - before["tokens_per_address"] == 2
    assert after["calls_per_caller"] - before["calls_per_caller"] == 1
    assert after["live_calls_per_token"] == before["live_calls_per_token"]


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(untrusting: ServerThread) -> None:
    """127.0.0.1 is not the trusted proxy here: its X-Forwarded-For is ignored, so three
    'different' clients are one address."""
    statuses = [
        httpx.post(f"{untrusting.url}/api/tokens", json={},
                   headers={**BEARER, "x-forwarded-for": f"203.0.113.{60 + i}"}).status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]
