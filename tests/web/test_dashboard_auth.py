"""The dashboard and the widget against production gateways in a real browser (Debian
chromium): the dashboard sends the admin token as a bearer header on HTTP and opens
``/ws/state`` with a single-use ticket, so the token never appears in a URL; the widget
says why a limit refused its call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import WebSocket, sync_playwright

from benchmarks.browser import launch, speech_wav
from gateway.app import create_app
from gateway.server import ServerThread
from tests.security.test_auth import ADMIN, secure_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DASH = "window.voxgateDashboard"
WIDGET = "document.querySelector('voxgate-call').stats"


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    settings = secure_settings(tmp_path_factory.mktemp("data"), agent="basic")
    with ServerThread(create_app(settings)) as running:
        yield running


def test_the_dashboard_streams_with_a_ticket_never_the_token(production: ServerThread) -> None:
    sockets: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            page.add_init_script(f"sessionStorage.setItem('voxgate.adminToken', '{ADMIN}')")
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{production.url}/dashboard")
            page.wait_for_function(f"() => {DASH} && {DASH}.state.connected", timeout=20_000)
            # a reconnect fetches a new ticket (the first one is spent)
            with page.expect_event("websocket") as reconnect:
                page.evaluate(f"() => {DASH}.api.socket.close()")
            again: WebSocket = reconnect.value
            page.wait_for_function(f"() => {DASH}.state.connected", timeout=20_000)
            assert not errors, errors
        finally:
            browser.close()
    state = [url for url in sockets if "/ws/state" in url]
    assert len(state) == 2 and again.url == state[1]
    assert all("ticket=" in url for url in state)
    assert state[0] != state[1], "each connection has its own ticket"
    assert not [url for url in requests + sockets if ADMIN in url], "the token was in a URL"


def test_the_widget_says_the_line_is_busy_and_the_first_call_goes_on(tmp_path: Path) -> None:
    """A production gateway with the demo page on and one live call per address."""
    settings = secure_settings(tmp_path, agent="basic", demo_page=True,
                               limits={"live_calls_per_address": 1})
    settings.allowed_origins = []  # the demo page's own origin is the gateway's
    mic = speech_wav(tmp_path / "caller.wav", "conf-locked", silence_before_s=30.0)
    with ServerThread(create_app(settings)) as server, sync_playwright() as p:
        browser = launch(p, mic)
        try:
            first, second = browser.new_page(), browser.new_page()
            for page in (first, second):
                page.goto(f"{server.url}/")
            first.locator("voxgate-call button.call").click()
            first.wait_for_function(f"() => {WIDGET}.sessionId", timeout=20_000)
            second.locator("voxgate-call button.call").click()
            error = second.locator("voxgate-call .error")
            error.filter(has_text="busy").wait_for(timeout=20_000)
            assert error.inner_text() == (
                "The line is busy: too many live calls from this address (1).")
            assert second.evaluate(f"() => {WIDGET}.sessionId") is None
            # the first call still plays the greeting and is answered later
            first.wait_for_function(f"() => {WIDGET}.chunksReceived > 0", timeout=20_000)
            assert first.evaluate(f"() => {WIDGET}.state") != "ended"
            first.locator("voxgate-call button.call").click()  # hang up
        finally:
            browser.close()
