"""The dashboard against a production gateway in a real browser (Debian chromium): it sends
the admin token as a bearer header on HTTP and opens ``/ws/state`` with a single-use
ticket, so the token never appears in a URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import WebSocket, sync_playwright

from gateway.app import create_app
from gateway.server import ServerThread
from tests.security.test_auth import ADMIN, secure_settings
from tests.web.browser import launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DASH = "window.voxgateDashboard"


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
