"""The dashboard under load: event emitted -> dashboard updated, and its frame rate.

    python -m benchmarks.dashboard_stream [--calls 20] [--seconds 20]

Runs the real gateway in-process on a loopback port and opens /dashboard in Debian's
chromium (WebGL on SwiftShader: no GPU), then puts the events of ``--calls`` simultaneous
synthetic calls on the gateway's bus at the rate of real calls (a turn every ~8 s per call:
state changes, transcripts, replies, TTS, latencies, now and then a handoff, a tool call,
a barge-in). Measured in the page:

* event -> dashboard updated: the bus's timestamp of the event -> the end of the animation
  frame that drew it (scene and panels), on the same machine's clock (p50, p95);
* frames per second of the page with every call on screen, and the time the frame
  callback takes.

Prints a table and writes benchmarks/results/dashboard_stream.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from benchmarks.browser import artifact, launch
from gateway.app import create_app
from gateway.config import Settings
from gateway.server import ServerThread
from orchestration.log.events import EventBus

RESULTS = Path(__file__).parent / "results"

# one turn of a call: (seconds after the turn starts, type, data)
TURN: list[tuple[float, str, dict[str, Any]]] = [
    (0.0, "vad.speech_started", {"onset_ms": 60, "at_ms": 0}),
    (0.05, "agent.state", {"state": "user_speaking", "previous": "listening"}),
    (1.8, "vad.speech_stopped", {"speech_ms": 1600, "span_ms": 1750, "silence_ms": 320}),
    (2.2, "stt.final", {"text": "I would like to book a table for two", "turn": 1}),
    (2.2, "agent.state", {"state": "thinking", "previous": "user_speaking"}),
    (2.25, "agent.reply", {"reply_id": "r2", "text": "Sure, for what time?"}),
    (2.5, "tts.started", {"reply_id": "r2", "text": "Sure, for what time?", "audio_ms": 1400}),
    (2.5, "agent.state", {"state": "agent_speaking", "previous": "thinking"}),
    (2.5, "turn.latency", {"reply_id": "r2", "total_ms": 640.0, "stt_ms": 300.0, "tts_ms": 90.0}),
    (4.0, "agent.state", {"state": "listening", "previous": "agent_speaking"}),
]
EXTRAS: list[tuple[str, dict[str, Any]]] = [
    ("agent.handoff", {"from": "front_desk", "to": "scheduling"}),
    ("tool.called", {"tool": "calendar.check"}),
    ("tts.interrupted", {"reply_id": "r2", "played_text": "", "unplayed_text": "x"}),
]


def drive_calls(bus: EventBus, calls: int, seconds: float, stop: threading.Event) -> int:
    """Emit the calls' events in real time from this thread; returns how many."""
    rng = random.Random(7)
    start = time.monotonic()
    plan: list[tuple[float, str, str, dict[str, Any]]] = []
    for c in range(calls):
        sid = f"bench-{c:02d}"
        t0 = rng.uniform(0, 2)
        started = {"protocol": "twilio", "caller": f"+1555{c:07d}"}
        plan.append((t0, sid, "session.started", started))
        turn_start = t0 + 0.5
        while turn_start < seconds:
            for dt, type_, data in TURN:
                plan.append((turn_start + dt, sid, type_, data))
            if rng.random() < 0.5:
                type_, data = EXTRAS[rng.randrange(len(EXTRAS))]
                plan.append((turn_start + 3.0, sid, type_, data))
            turn_start += rng.uniform(7, 9)
        plan.append((seconds + 0.5, sid, "session.ended", {"reason": "benchmark over"}))
    plan.sort(key=lambda p: p[0])
    for at, sid, type_, data in plan:
        delay = start + at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        bus.emit(sid, type_, data)
    return len(plan)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ServerThread(
        create_app(Settings(data_dir=Path(tmp)))
    ) as server, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(f"{server.url}/dashboard?trace=1")
        page.wait_for_function("() => window.voxgateDashboard?.state.connected")
        stop = threading.Event()
        emitted: list[int] = []
        bus = server.runtime.bus
        driver = threading.Thread(
            target=lambda: emitted.append(drive_calls(bus, args.calls, args.seconds, stop))
        )
        driver.start()
        fps: list[float] = []
        frame_ms: list[float] = []
        live: list[int] = []
        time.sleep(3.0)  # every call has started
        deadline = time.monotonic() + args.seconds - 4.0
        while time.monotonic() < deadline:
            time.sleep(1.0)
            sample = page.evaluate(
                "() => { const d = window.voxgateDashboard; return {fps: d.stats.fps,"
                " frame: d.stats.lastFrameMs,"
                " live: Object.values(d.state.sessions).filter(s => s.live).length}; }"
            )
            fps.append(sample["fps"])
            frame_ms.append(sample["frame"])
            live.append(sample["live"])
        page.screenshot(path=artifact("dashboard-20-calls.png"))
        draw = page.evaluate("() => window.voxgateDashboard.scene.sample(16)")
        driver.join()
        time.sleep(1.0)
        trace = page.evaluate("() => window.voxgateDashboard.stats.trace")
        browser.close()
    delays = [t["shownAt"] - t["ts"] * 1000 for t in trace]
    result = {
        "calls": args.calls,
        "seconds": args.seconds,
        "events_emitted": emitted[0] if emitted else 0,
        "events_drawn": len(delays),
        "event_to_dashboard_ms_p50": round(statistics.median(delays), 1),
        "event_to_dashboard_ms_p95": round(percentile(delays, 0.95), 1),
        "fps_median": round(statistics.median(fps), 1),
        "fps_min": round(min(fps), 1),
        "frame_callback_ms_median": round(statistics.median(frame_ms), 2),
        "live_calls_on_screen": max(live),
        "draw_calls": draw["drawCalls"],
        "renderer": "chromium SwiftShader (CPU), 1280x720 viewport",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard_stream.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
