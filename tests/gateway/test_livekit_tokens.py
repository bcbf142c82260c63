"""POST /api/livekit/token: room tokens for the widget's LiveKit calls, on the real app
in-process (no models needed: the endpoint never touches a call). The tokens themselves
join a real LiveKit server in tests/web/test_livekit_widget.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr, ValidationError

from gateway.app import create_app
from gateway.auth import Auth
from gateway.config import LimitSettings, Settings

LK_KEY = "lk-key"
LK_SECRET = "lk-secret-" + "s" * 40
SIGNING = "signing-key-" + "k" * 40
SHOP = "https://shop.example"


def settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path, "mode": "production", "admin_token": SecretStr("a" * 40),
        "twilio_auth_token": SecretStr("t" * 40), "token_secret": SecretStr(SIGNING),
        "livekit_url": "wss://lk.example", "livekit_api_key": LK_KEY,
        "livekit_api_secret": SecretStr(LK_SECRET), **extra}
    return Settings(**values)


async def post(s: Settings, body: dict[str, Any], origin: str = SHOP,
               address: str = "198.51.100.7") -> httpx.Response:
    app = create_app(s)
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post("/api/livekit/token", json=body, headers={"origin": origin})


def widget_token(s: Settings, caller: str | None = None, origin: str | None = None) -> str:
    return Auth(s).mint_widget_token(caller, origin)[0]


def room_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, LK_SECRET, algorithms=["HS256"],
                                        options={"verify_aud": False})
    return claims


async def test_a_widget_token_buys_a_new_room_and_a_token_for_it(tmp_path: Path) -> None:
    s = settings(tmp_path)
    token = widget_token(s, caller="demo-page")
    first, second = [await post(s, {"token": token}) for _ in range(2)]
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["url"] == "wss://lk.example"
    assert body["room"].startswith("voxgate-") and body["room"] != second.json()["room"]
    claims = room_claims(body["token"])
    assert claims["iss"] == LK_KEY and claims["sub"] == body["identity"] == "demo-page"
    video = claims["video"]
    assert video["room"] == body["room"] and video["roomJoin"] is True
    assert video["canPublishSources"] == ["microphone"] and video["canPublishData"] is False
    assert "roomConfig" not in claims  # any worker takes the room
    assert claims["exp"] - claims["nbf"] <= 600
    assert first.headers["access-control-allow-origin"] == "*"


async def test_rooms_ask_for_the_configured_agent(tmp_path: Path) -> None:
    s = settings(tmp_path, livekit_agent_name="front-desk")
    response = await post(s, {"token": widget_token(s)})
    claims = room_claims(response.json()["token"])
    assert claims["roomConfig"]["agents"] == [{"agentName": "front-desk"}]
    assert response.json()["identity"].startswith("web-")  # no caller in the token


@pytest.mark.parametrize(("body", "origin", "status", "detail"), [
    ({}, SHOP, 401, "widget token required"),
    ({"token": "not-a-token"}, SHOP, 401, "invalid widget token"),
    ({"token": "BOUND"}, "https://evil.example", 403, "widget token is for https://shop"),
    ({"token": "FREE"}, "https://evil.example", 403, "origin https://evil.example is not"),
])
async def test_refused_without_a_valid_widget_token(
        tmp_path: Path, body: dict[str, str], origin: str, status: int, detail: str) -> None:
    s = settings(tmp_path, allowed_origins=[SHOP])
    if body.get("token") == "BOUND":
        body = {"token": widget_token(s, origin=SHOP)}
    elif body.get("token") == "FREE":
        body = {"token": widget_token(s)}
    response = await post(s, body, origin=origin)
    assert response.status_code == status and detail in response.json()["detail"]
    assert response.headers["access-control-allow-origin"] == "*"  # the widget reads why


async def test_not_configured_is_a_clear_404(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)  # development: no widget token needed either
    response = await post(s, {})
    assert response.status_code == 404
    assert "VOXGATE_LIVEKIT_URL" in response.json()["detail"]


async def test_development_without_a_signing_key_needs_no_widget_token(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, livekit_url="ws://127.0.0.1:7880", livekit_api_key=LK_KEY,
                 livekit_api_secret=SecretStr(LK_SECRET))
    response = await post(s, {"caller": "alice smith"})
    assert response.status_code == 200, response.text
    assert response.json()["identity"] == "alice-smith"


async def test_rate_limited_per_address_and_per_widget_token(tmp_path: Path) -> None:
    limits = LimitSettings(tokens_per_minute_per_address=2, calls_per_minute_per_token=1)
    s = settings(tmp_path, limits=limits)
    app = create_app(s)  # one app: the limits live in it
    token = widget_token(s)

    async def post_from(address: str, body: dict[str, Any]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.post("/api/livekit/token", json=body)

    assert (await post_from("203.0.113.1", {"token": token})).status_code == 200
    again = await post_from("203.0.113.2", {"token": token})  # another address, same token
    assert again.status_code == 429 and "calls with this widget token" in again.json()["detail"]
    fresh = widget_token(s)
    assert (await post_from("203.0.113.1", {"token": fresh})).status_code == 200
    refused = await post_from("203.0.113.1", {"token": widget_token(s)})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "credential requests from this address" in refused.json()["detail"]


async def test_a_page_on_another_site_may_ask(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as client:
        response = await client.options("/api/livekit/token", headers={
            "origin": SHOP, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "content-type" in response.headers["access-control-allow-headers"]


def test_livekit_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(data_dir=tmp_path, livekit_url="wss://lk.example")
    with pytest.raises(ValidationError, match="livekit_url must start with"):
        Settings(data_dir=tmp_path, livekit_url="lk.example", livekit_api_key=LK_KEY,
                 livekit_api_secret=SecretStr(LK_SECRET))
