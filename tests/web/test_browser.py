"""The widget and the dashboard in a real browser (Debian chromium), against the real
gateway with the real models, the caller being a fake microphone playing real speech.

Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from benchmarks.browser import artifact, launch, speech_wav
from gateway.server import ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WIDGET_STATS = "() => document.querySelector('voxgate-call').stats"
DASH = "window.voxgateDashboard"
CONNECTED = f"() => {DASH} && {DASH}.state.connected"


def wait_for(page: Page, probe: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    """Poll ``probe`` (page.evaluate-based) until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        page.wait_for_timeout(200)
    raise AssertionError(f"timed out waiting for {what}")


def widget(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate(WIDGET_STATS)
    return stats


def captions(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = widget(page)["captions"]
    return found


def said(page: Page, who: str, text: str) -> bool:
    return any(c["who"] == who and text in c["text"] for c in captions(page))


def test_widget_call_shows_captions_and_the_dashboard_follows_it(
    gateway_server: ServerThread, tmp_path: Path
) -> None:
    # the caller waits for the greeting to finish, then speaks
    mic = speech_wav(tmp_path / "caller.wav", "conf-locked", silence_before_s=6.0)
    with sync_playwright() as p:
        browser = launch(p, mic)
        try:
            dash = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            dash.on("pageerror", lambda e: errors.append(str(e)))
            dash.goto(f"{gateway_server.url}/dashboard")
            dash.wait_for_function(CONNECTED)

            demo = browser.new_page()
            demo.on("pageerror", lambda e: errors.append(str(e)))
            demo.goto(f"{gateway_server.url}/")
            button = demo.locator("voxgate-call button.call")
            button.wait_for()
            assert button.get_attribute("aria-label") == "Start voice call: Talk to the agent"
            button.focus()
            demo.keyboard.press("Enter")  # keyboard works, not just the mouse

            sid = wait_for(demo, lambda: widget(demo)["sessionId"], "a session")
            assert button.get_attribute("aria-pressed") == "true"
            # the agent's caption appears in the widget
            wait_for(demo, lambda: said(demo, "agent", "voxgate"), "the greeting's caption")
            assert "Hello, this is voxgate." in demo.locator("voxgate-call .captions").inner_text()

            # the dashboard lists the call and draws it
            dash.locator(f'#live-calls button[data-session="{sid}"]').wait_for(timeout=10_000)
            sample = dash.evaluate("() => window.voxgateDashboard.scene.sample()")
            assert sample["lit"] > 0.02 and sample["colors"] >= 4, sample
            dash.screenshot(path=artifact("dashboard-live-call.png"))
            # clicking the call in the 3D view focuses it
            box = dash.locator("#scene").bounding_box()
            assert box is not None
            dash.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.55)
            dash.wait_for_function(f"() => {DASH}.ui.focus === '{sid}'", timeout=5_000)

            # the caller speaks; both sides' captions follow in the widget and the dashboard
            wait_for(demo, lambda: said(demo, "user", ""), "the caller's caption", 40)
            wait_for(demo, lambda: said(demo, "agent", "I heard"), "the answer's caption")
            heard = next(c["text"] for c in captions(demo) if c["who"] == "user")
            assert "locked" in heard.lower(), heard
            dash.locator("#captions li.agent", has_text="I heard").wait_for(timeout=10_000)
            assert "locked" in dash.locator("#captions").inner_text().lower()
            session = dash.evaluate(f"() => {DASH}.state.sessions['{sid}']")
            assert session["turns"] == 1 and len(session["latencies"]) == 1
            states = {e["text"].split(" → ")[-1] for e in session["timeline"]}
            assert {"agent_speaking", "thinking", "user_speaking"} <= states
            assert dash.locator("#timeline li").count() >= 10
            dash.screenshot(path=artifact("dashboard-focused-call.png"))
            demo.screenshot(path=artifact("widget-call.png"))

            # hang up with Escape; the dashboard sees the call end
            demo.locator("voxgate-call").press("Escape")
            dash.wait_for_function(
                f"() => {DASH}.state.sessions['{sid}'].state === 'ended'", timeout=10_000
            )
            wait_for(demo, lambda: widget(demo)["state"] == "ended", "the widget to end")

            # and replays it from its events, faster than real time
            dash.locator(f'#ended-calls li:has(button[data-session="{sid}"]) button.replay').click()
            dash.select_option("#replay-speed", "16")
            replaying = f"{DASH}.ui.replay.replay.state.sessions['{sid}']"
            dash.wait_for_function(f"() => ({replaying} || {{}}).state === 'ended'", timeout=20_000)
            replayed = dash.evaluate(f"() => {replaying}.captions.map(c => c.text)")
            assert any("I heard" in text for text in replayed)
            dash.screenshot(path=artifact("dashboard-replay.png"))
            assert not errors, errors
        finally:
            browser.close()


def test_barge_in_from_the_microphone_stops_playback(
    gateway_server: ServerThread, tmp_path: Path
) -> None:
    # the caller talks over the greeting
    mic = speech_wav(tmp_path / "barge.wav", "vm-enter-num-to-call", silence_before_s=1.2)
    with sync_playwright() as p:
        browser = launch(p, mic)
        try:
            page = browser.new_page()
            page.goto(f"{gateway_server.url}/")
            page.locator("voxgate-call button.call").click()
            wait_for(page, lambda: widget(page)["chunksReceived"] > 0, "the greeting's audio")
            stats = wait_for(
                page, lambda: (s := widget(page))["clearedAt"] and s, "a clear to stop playback"
            )
            assert stats["clears"] >= 1
            assert stats["droppedMs"] > 100, "buffered greeting audio was dropped"
            cut = wait_for(
                page, lambda: page.locator("voxgate-call .captions li.cut").count(), "a cut caption"
            )
            assert cut >= 1
            page.screenshot(path=artifact("widget-barge-in.png"))
            # playback stopped: nothing queued, and the played position no longer moves
            # until the agent answers the caller (a new reply)
            after = widget(page)
            assert after["queuedMs"] == 0 or after["chunksReceived"] > stats["chunksReceived"]
            assert stats["playedMs"] <= after["playedMs"]
            page.locator("voxgate-call button.call").click()  # hang up
        finally:
            browser.close()


def test_agent_hierarchy_highlights_and_workflows_on_the_dashboard(
    gateway_server: ServerThread,
) -> None:
    """Agent events the built-in agent does not emit yet, put on the bus as the voice
    agents will: handoffs build the hierarchy, tool calls pulse, denials and escalations
    flash, and the call's workflow is drawn with its current state lit."""
    bus = gateway_server.runtime.bus
    sid = "hierarchy-1"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            dash = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            dash.on("pageerror", lambda e: errors.append(str(e)))
            dash.goto(f"{gateway_server.url}/dashboard")
            dash.wait_for_function(CONNECTED)
            started = {"protocol": "twilio", "call_sid": "CA42", "caller": "+15550142"}
            bus.emit(sid, "session.started", started)
            bus.emit(sid, "agent.handoff", {"from": "front_desk", "to": "scheduling"})
            # as the engine emits it for a call's run: the flow names itself as `agent`
            transition = {"agent": "scheduling", "from": "route", "to": "ask_date", "via": "start"}
            bus.emit(sid, "workflow.transition", transition)
            dash.locator(f'#live-calls button[data-session="{sid}"]').click()
            bus.emit(sid, "agent.state", {"state": "thinking", "previous": "listening"})
            bus.emit(sid, "tool.called", {"tool": "calendar.check", "agent": "scheduling"})
            denied = {"agent": "ops", "tool": "ops.restart", "error": "PermissionDenied: no grant"}
            bus.emit(sid, "tool.gave_up", denied)
            bus.emit(sid, "call.escalated", {"target": "human", "reason": "caller asked"})
            dash.wait_for_function(
                f"() => {DASH}.state.sessions['{sid}'].escalations === 1", timeout=5_000
            )
            station = dash.evaluate(
                f"""() => {{ const st = {DASH}.scene.stations.get('{sid}');
                    return {{ agents: [...st.agents.keys()], tools: [...st.tools.keys()],
                             beam: st.beam.visible, waves: st.waves.filter(w => w.visible).length,
                             spinner: st.spinner.visible }}; }}"""
            )
            assert station["agents"] == ["front_desk", "scheduling"]
            assert station["tools"] == ["calendar.check"]
            assert station["beam"] and station["waves"] >= 1 and station["spinner"], station
            dash.locator('#workflow .node.current[data-state="ask_date"]').wait_for(timeout=10_000)
            assert dash.locator("#timeline li.kind-denial").count() == 1
            assert dash.locator("#timeline li.kind-escalation").count() == 1
            flag = f'#live-calls li:has(button[data-session="{sid}"]) .flag.denial'
            dash.locator(flag).wait_for(timeout=5_000)
            dash.screenshot(path=artifact("dashboard-agents-and-highlights.png"))
            bus.emit(sid, "session.ended", {"reason": "transferred"})
            assert not errors, errors
        finally:
            browser.close()
