"""Every denial path at the edges, against a real server in production mode."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from gateway.app import create_app
from gateway.auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED, InsecureConfiguration
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread
from orchestration.log.events import EventRecorder
from tests.gateway.test_bad_input import closed_with, start_message

pytestmark = pytest.mark.slow

ADMIN = "admin-secret-123"
TWILIO = "twilio-auth-456"


def secure_settings(data_dir: object, **extra: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        mode="production",
        admin_token=SecretStr(ADMIN),
        twilio_auth_token=SecretStr(TWILIO),
        token_secret=SecretStr("signing-key-789-" + "x" * 32),
        allowed_origins=["https://shop.example"],
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(create_app(secure_settings(tmp_path_factory.mktemp("data")))) as running:
        yield running


@pytest.fixture
def recorder(server: ServerThread) -> Iterator[EventRecorder]:
    rec = EventRecorder(server.runtime.bus)
    yield rec
    rec.close()


def ws(server: ServerThread, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def mint(server: ServerThread, **body: object) -> str:
    response = httpx.post(
        f"{server.url}/api/tokens", json=body, headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_production_refuses_to_start_without_secrets(tmp_path: object) -> None:
    with pytest.raises(InsecureConfiguration, match=r"VOXGATE_ADMIN_TOKEN.*TWILIO.*TOKEN_SECRET"):
        create_app(Settings(data_dir=tmp_path, mode="production"))


def test_development_mode_says_so_loudly(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    create_app(Settings(data_dir=tmp_path))
    assert caplog.text.count("DEVELOPMENT MODE") == 4  # three secrets, and no limits


@pytest.mark.parametrize("path", ["/api/sessions", "/api/workflows", "/api/runs", "/metrics"])
def test_admin_endpoints_need_the_bearer_token(server: ServerThread, path: str) -> None:
    assert httpx.get(f"{server.url}{path}").status_code == 401
    wrong = httpx.get(f"{server.url}{path}", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    right = httpx.get(f"{server.url}{path}", headers={"authorization": f"Bearer {ADMIN}"})
    assert right.status_code == 200


def test_minting_tokens_needs_the_admin_token(server: ServerThread) -> None:
    assert httpx.post(f"{server.url}/api/tokens", json={}).status_code == 401


async def state_stream(url: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    async with connect(url, additional_headers=headers) as sock:
        first = json.loads(await asyncio.wait_for(sock.recv(), 5))
        assert isinstance(first, dict)
        return first


def test_state_stream_needs_the_admin_token(server: ServerThread) -> None:
    """(tests/security/test_admin_token.py tries the other ways in.)"""
    with pytest.raises(InvalidStatus):
        asyncio.run(state_stream(ws(server, "/ws/state")))
    bearer = {"authorization": f"Bearer {ADMIN}"}
    first = asyncio.run(state_stream(ws(server, "/ws/state"), bearer))
    assert first["type"] == "snapshot"


async def browser_close(url: str, origin: str | None = None) -> tuple[int | None, str]:
    async with connect(url, origin=Origin(origin) if origin else None) as sock:
        code, _ = await closed_with(sock)
        return code, sock.close_reason or ""


@pytest.mark.parametrize(
    ("query", "origin", "code", "reason"),
    [
        ("", None, CLOSE_UNAUTHORIZED, "token required"),
        ("?token=garbage", None, CLOSE_UNAUTHORIZED, "invalid widget token"),
        ("EXPIRED", None, CLOSE_UNAUTHORIZED, "expired"),
        ("VALID", "https://evil.example", CLOSE_FORBIDDEN, "not allowed"),
        ("BOUND", "https://other.example", CLOSE_FORBIDDEN, "is for https://shop.example"),
    ],
)
def test_browser_calls_need_a_valid_token(
    server: ServerThread,
    recorder: EventRecorder,
    query: str,
    origin: str | None,
    code: int,
    reason: str,
) -> None:
    if query == "EXPIRED":
        token, _ = server.app.state.auth.mint_widget_token("x", ttl_s=0.001)
        time.sleep(1.1)
        query = f"?token={token}"
    elif query == "VALID":
        query = f"?token={mint(server)}"
    elif query == "BOUND":
        query = f"?token={mint(server, origin='https://shop.example')}"
    got, why = asyncio.run(browser_close(ws(server, f"/ws/browser{query}"), origin))
    assert got == code
    assert reason in why
    assert not recorder.of_type("session.started"), "a refused call started a session"


def test_a_valid_widget_token_places_a_call(server: ServerThread) -> None:
    pcm, _ = load_prompt("conf-locked")
    token = mint(server, caller="shop-visitor", origin="https://shop.example")
    result = asyncio.run(
        run_call(pcm, "browser", server.url, tail_s=10.0, token=token, admin_token=ADMIN)
    )
    assert result.user_transcripts()


def signed(url: str, params: dict[str, str]) -> str:
    signature: str = RequestValidator(TWILIO).compute_signature(url, params)
    return signature


def test_twilio_webhooks_need_a_valid_signature(server: ServerThread) -> None:
    url = f"{server.url}/twilio/voice"
    form = {"From": "+15550001111", "CallSid": "CA9"}
    assert httpx.post(url, data=form).status_code == 403
    bad = httpx.post(url, data=form, headers={"x-twilio-signature": "AAAA"})
    assert bad.status_code == 403
    good = httpx.post(url, data=form, headers={"x-twilio-signature": signed(url, form)})
    assert good.status_code == 200 and "<Stream" in good.text
    after = f"{server.url}/twilio/after-stream"
    assert httpx.post(after, data={"CallSid": "CA9"}).status_code == 403


async def twilio_stream(url: str, signature: str | None) -> None:
    headers = {"x-twilio-signature": signature} if signature else {}
    async with connect(url, additional_headers=headers) as sock:
        await sock.send(start_message(call_sid="CA-signed"))
        await sock.send(
            json.dumps(
                {
                    "event": "stop",
                    "sequenceNumber": "2",
                    "streamSid": "MZ1",
                    "stop": {"accountSid": "AC1", "callSid": "CA-signed"},
                }
            )
        )
        await closed_with(sock)


def test_twilio_stream_upgrade_needs_a_valid_signature(
    server: ServerThread, recorder: EventRecorder
) -> None:
    url = ws(server, "/ws/twilio")
    for signature in (None, "AAAA"):
        with pytest.raises(InvalidStatus):
            asyncio.run(twilio_stream(url, signature))
    assert not recorder.of_type("session.started")
    asyncio.run(twilio_stream(url, signed(url, {})))
    started = recorder.of_type("session.started")
    assert started and started[0].data["call_sid"] == "CA-signed"
