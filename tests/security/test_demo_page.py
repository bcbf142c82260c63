"""The demo page at ``GET /`` mints a widget token for whoever loads it: in production it
is off unless enabled, and then rate-limited per client address. Real servers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from gateway.app import create_app
from gateway.config import LimitSettings, Settings
from gateway.server import ServerThread
from orchestration.log.events import EventRecorder
from tests.security.test_auth import secure_settings

pytestmark = pytest.mark.slow

TOKEN = re.compile(r'data-token="([^"]+)"')


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(tmp_path_factory.mktemp("data"), agent="basic")
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def production_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(
        tmp_path_factory.mktemp("data"),
        agent="basic",
        demo_page=True,
        limits=LimitSettings(demo_pages_per_minute_per_address=3),
    )
    with ServerThread(create_app(settings)) as running:
        yield running


def test_production_serves_no_demo_page_and_no_token(
    production: ServerThread,
) -> None:
    response = httpx.get(production.url + "/")
    assert response.status_code == 404
    assert "data-token" not in response.text
    assert "VOXGATE_DEMO_PAGE" in response.text
    # the widget's own files are still served: other sites embed it
    assert httpx.get(production.url + "/widget.js").status_code == 200


def test_the_default_follows_the_mode(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).demo_page_on
    assert not secure_settings(tmp_path).demo_page_on
    assert secure_settings(tmp_path, demo_page=True).demo_page_on


async def opens_a_session(url: str) -> str:
    async with connect(url) as sock:
        await sock.send(json.dumps({"type": "start"}))
        message = json.loads(await asyncio.wait_for(sock.recv(), 5))
        await sock.send(json.dumps({"type": "stop"}))
        return str(message["type"])


def test_an_enabled_demo_page_carries_a_working_token_and_is_rate_limited(
    production_demo: ServerThread,
) -> None:
    recorder = EventRecorder(production_demo.runtime.bus)
    try:
        pages = [httpx.get(production_demo.url + "/") for _ in range(4)]
        assert [p.status_code for p in pages] == [200, 200, 200, 429]
        refused = pages[-1]
        assert 1 <= int(refused.headers["retry-after"]) <= 20  # one of 3 a minute comes back
        assert "data-token" not in refused.text
        assert "too many demo pages" in refused.text
        assert not recorder.of_type("session.started"), "a page view started a session"
        match = TOKEN.search(pages[0].text)
        assert match, "the demo page has no widget token"
        ws = production_demo.url.replace("http://", "ws://")
        assert asyncio.run(opens_a_session(f"{ws}/ws/browser?token={match.group(1)}")) == (
            "session"
        )
    finally:
        recorder.close()
