"""The widget calling through LiveKit (``data-transport="livekit"``) in a real browser:
Debian's chromium with a fake microphone playing real speech, a page on another origin
embedding widget.js, the gateway minting the room token, the real livekit-server
(gateway/servers/livekit.py) and a real ``voxgate livekit-worker`` answering the room.

WebRTC on loopback: the server offers one ICE candidate, on 127.0.0.1 (the tests' config);
Chromium gathers its own on the machine's other interfaces (never on loopback by default)
and reaches 127.0.0.1 from there, so the media never leaves the machine and Chromium needs
no extra flag. It needs some interface besides loopback, though: in a network namespace
with only ``lo`` the peer connection never connects, ``--allow-loopback-in-peer-connection``
or not (docs/deployment.md). The test checks the route each peer connection selected.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import sync_playwright
from pydantic import SecretStr

from benchmarks.browser import (
    RECORD_PEER_CONNECTIONS,
    SELECTED_ROUTES,
    artifact,
    embedding_page,
    launch,
    speech_wav,
)
from benchmarks.widget_transports import start_worker, stop_worker
from gateway.app import create_app
from gateway.config import Settings
from gateway.server import ServerThread
from tests.web.test_browser import captions, said, wait_for, widget

if TYPE_CHECKING:
    from gateway.servers.livekit import LiveKitServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
pytest_plugins = ("tests.livekit_server",)

AGENT = "widget-test"  # explicit dispatch: other tests' workers on the server keep out


@pytest.fixture(scope="module")
def worker(livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_worker(livekit_server.url, livekit_server.api_key, livekit_server.api_secret,
                        tmp_path_factory.mktemp("lk-widget-worker"), AGENT)
    try:
        yield proc
    finally:
        stop_worker(proc)


@pytest.fixture(scope="module")
def lk_gateway(livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[ServerThread]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("lk-gw"), agent="basic",
                        livekit_url=livekit_server.url, livekit_api_key=livekit_server.api_key,
                        livekit_api_secret=SecretStr(livekit_server.api_secret),
                        livekit_agent_name=AGENT)
    with ServerThread(create_app(settings)) as running:
        yield running


def microphone(folder: Path, prompt: str, silence_before_s: float) -> Path:
    """Real speech at 48 kHz, the rate a real microphone and WebRTC's Opus run at."""
    wav16 = speech_wav(folder / f"{prompt}-16k.wav", prompt, silence_before_s)
    wav48 = folder / f"{prompt}-48k.wav"
    subprocess.run(["sox", str(wav16), "-r", "48000", str(wav48)], check=True)
    return wav48


def test_widget_calls_through_livekit(lk_gateway: ServerThread,
                                      worker: subprocess.Popen[bytes], tmp_path: Path) -> None:
    mic = microphone(tmp_path, "conf-locked", silence_before_s=10.0)
    with sync_playwright() as p:
        browser = launch(p, mic)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: print("console:", m.text))  # shown on failure
            page.add_init_script(RECORD_PEER_CONNECTIONS)
            with embedding_page(lk_gateway.url, label="Call us", caller="shop-page",
                                transport="livekit") as url:
                page.goto(url)
            page.locator("voxgate-call button.call").click()
            room = wait_for(page, lambda: widget(page).get("room"), "a room", 30)
            assert room.startswith("voxgate-") and widget(page)["transport"] == "livekit"
            # the greeting: its caption from the worker's events, and its audio heard
            wait_for(page, lambda: said(page, "agent", "voxgate"), "the greeting's caption", 90)
            wait_for(page, lambda: widget(page).get("firstAudioAt"), "the greeting's audio", 30)
            routes = page.evaluate(SELECTED_ROUTES)
            # media runs to the server's loopback candidate (its only one)
            assert routes and all(r.split(" -> ")[1].startswith("127.0.0.1:")
                                  for r in routes), routes
            # the caller speaks; their words and the answer come back
            wait_for(page, lambda: said(page, "user", ""), "the caller's caption", 60)
            heard = next(c["text"] for c in captions(page) if c["who"] == "user")
            assert "locked" in heard.lower(), heard
            wait_for(page, lambda: said(page, "agent", "I heard"), "the answer's caption", 60)
            answer_at = next(c["at"] for c in captions(page)
                             if c["who"] == "agent" and "I heard" in c["text"])
            wait_for(page, lambda: [t for t in widget(page)["audibleAt"] if t > answer_at],
                     "the answer's audio", 30)
            stats = widget(page)
            assert stats["events"] > 5 and stats["agentAudioMs"] > 1000
            assert stats["sessionId"], "the worker names the call's session in the room"
            assert stats["state"] in {"listening", "agent_speaking"}, stats["state"]
            page.screenshot(path=artifact("widget-livekit-call.png"))
            print(f"livekit: click -> greeting audio {stats['firstAudioAt'] - stats['startedAt']}"
                  f" ms; routes {routes}")
            # hang up: the room is left and the widget says so
            page.locator("voxgate-call button.call").click()
            wait_for(page, lambda: widget(page)["state"] == "ended", "the call to end", 15)
            assert widget(page)["endReason"] == "you hung up"
            assert not errors, errors
        finally:
            browser.close()


def test_a_gateway_without_livekit_says_so(gateway_server: ServerThread) -> None:
    """The room token's POST (a cross-origin fetch, with its CORS preflight) gets the
    gateway's 404, and the widget shows why instead of hanging in "connecting"."""
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page()
            with embedding_page(gateway_server.url, transport="livekit") as url:
                page.goto(url)
            page.locator("voxgate-call button.call").click()
            wait_for(page, lambda: widget(page)["state"] == "error", "the widget to give up")
            error = page.locator("voxgate-call .error").inner_text()
            assert "LiveKit calls are not configured on this gateway" in error, error
            assert page.locator("voxgate-call button.call").get_attribute("aria-pressed") == (
                "false")
        finally:
            browser.close()


def test_a_room_no_agent_answers_gives_up(lk_gateway: ServerThread) -> None:
    """A room that asks for an agent no worker serves gets none (a self-hosted server
    queues nothing): the widget gives up after AGENT_WAIT_MS and says so."""
    settings = lk_gateway.runtime.settings  # the settings the token router reads
    settings.livekit_agent_name = "nobody-serves-this"
    try:
        with sync_playwright() as p:
            browser = launch(p)
            try:
                page = browser.new_page()
                with embedding_page(lk_gateway.url, transport="livekit") as url:
                    page.goto(url)
                page.locator("voxgate-call button.call").click()
                wait_for(page, lambda: widget(page).get("room"), "a room", 30)
                wait_for(page, lambda: widget(page)["state"] == "error", "the widget to give up",
                         40)
                assert "No agent answered" in page.locator("voxgate-call .error").inner_text()
            finally:
                browser.close()
    finally:
        settings.livekit_agent_name = AGENT
