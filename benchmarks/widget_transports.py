"""The widget's two transports side by side: click -> the agent's greeting heard, over
/ws/browser and through a LiveKit room, in Debian's chromium.

    python -m benchmarks.widget_transports [--runs 5]

Starts a livekit-server (gateway/servers/livekit.py, built by ``make livekit``), one
``voxgate livekit-worker`` and one gateway (``voxgate serve``'s app, minting the room
tokens), both with the built-in agent; then, turn about, a page on another origin embeds
widget.js (``data-transport`` unset, then ``livekit``), and the button is clicked. The
widget stamps the click (``stats.startedAt``) and the first agent audio it plays
(``stats.firstAudioAt``: over the WebSocket, the playback worklet's first sample of the
greeting; through LiveKit, the first 20 ms poll of an analyser on the agent's track above
-40 dBFS), both on Date.now(). What that covers: the WebSocket's connect and ``start``, or
the room token's POST, livekit-client's join, the server's dispatch of the room to the
worker, the worker's join and subscription; then the greeting's synthesis and its way to
the speaker. The microphone plays silence meanwhile.

Prints a table and writes benchmarks/results/widget_transports.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from pydantic import SecretStr

from benchmarks.browser import (
    RECORD_PEER_CONNECTIONS,
    SELECTED_ROUTES,
    embedding_page,
    launch,
    speech_wav,
)
from benchmarks.provenance import commit, machine
from gateway.app import create_app
from gateway.config import Settings
from gateway.server import ServerThread
from gateway.servers.livekit import running

RESULTS = Path(__file__).parent / "results"
AGENT = "widget-bench"
STATS = "() => document.querySelector('voxgate-call').stats"


def start_worker(url: str, api_key: str, api_secret: str, folder: Path, agent_name: str,
                 ) -> subprocess.Popen[bytes]:
    """A ``voxgate livekit-worker`` with the built-in agent that takes only rooms asking
    for ``agent_name``; returns once it has registered with the server."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "worker.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VOXGATE_AGENT": "basic",
           "VOXGATE_DATA_DIR": str(folder / "data")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "livekit-worker", "--url", url,
             "--api-key", api_key, "--api-secret", api_secret, "--agent-name", agent_name,
             "--name", agent_name, "--capacity", "2"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 180
    while "registered worker" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the worker did not register: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def one_call(browser: Browser, gateway: str, transport: str) -> dict[str, Any]:
    """Click, wait for the greeting's first audio, hang up: the click -> audio delay."""
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text[:300]))
    try:
        page.add_init_script(RECORD_PEER_CONNECTIONS)
        data = {"label": "Call us", "caller": "bench"}
        if transport == "livekit":
            data["transport"] = "livekit"
        with embedding_page(gateway, **data) as url:
            page.goto(url)
        page.locator("voxgate-call button.call").click()
        try:
            page.wait_for_function(f"() => ({STATS})().firstAudioAt", timeout=60_000, polling=20)
        except PlaywrightError:
            stats = page.evaluate(STATS)
            raise RuntimeError(f"{transport}: no agent audio; state {stats['state']}, "
                               f"events {stats['events']}, end {stats['endReason']}, captions "
                               f"{stats['captions']}, console: {console[-15:]}") from None
        stats = page.evaluate(STATS)
        routes = page.evaluate(SELECTED_ROUTES)
        page.locator("voxgate-call button.call").click()
        page.wait_for_function(f"() => ({STATS})().state === 'ended'", timeout=15_000)
        call = {"click_to_audio_ms": stats["firstAudioAt"] - stats["startedAt"],
                "routes": routes}
        if transport == "livekit":  # where the time goes
            call["click_to_joined_ms"] = stats["joinedAt"] - stats["startedAt"]
            call["click_to_agent_track_ms"] = stats["agentTrackAt"] - stats["startedAt"]
        return call
    finally:
        page.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values)), "min_ms": round(min(values)),
            "max_ms": round(max(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    calls: dict[str, list[dict[str, Any]]] = {"websocket": [], "livekit": []}
    with tempfile.TemporaryDirectory() as tmp, running() as server:
        root = Path(tmp)
        worker = start_worker(server.url, server.api_key, server.api_secret,
                              root / "worker", AGENT)
        settings = Settings(data_dir=root / "gw", agent="basic", livekit_url=server.url,
                            livekit_api_key=server.api_key,
                            livekit_api_secret=SecretStr(server.api_secret),
                            livekit_agent_name=AGENT)
        settings.voice.turn.reprompt_after_s = 60.0
        mic = speech_wav(root / "quiet.wav", "conf-locked", silence_before_s=120.0)
        try:
            with ServerThread(create_app(settings)) as gateway, sync_playwright() as p:
                browser = launch(p, mic)
                try:
                    one_call(browser, gateway.url, "livekit")  # warm-up: pages, caches
                    one_call(browser, gateway.url, "websocket")
                    for _ in range(args.runs):
                        for transport, runs in calls.items():
                            runs.append(one_call(browser, gateway.url, transport))
                            time.sleep(3.0)  # the worker reports itself free again
                finally:
                    browser.close()
        finally:
            stop_worker(worker)
    result: dict[str, Any] = {
        "benchmark": "widget_transports", "commit": commit(), "machine": machine(),
        "command": f"python -m benchmarks.widget_transports --runs {args.runs}",
        "click_to_greeting_audio": {
            t: summary([c["click_to_audio_ms"] for c in runs]) for t, runs in calls.items()},
        "runs": calls,
    }
    print(f"{'transport':<10} {'p50 ms':>7} {'min':>6} {'max':>6}   click -> greeting audio")
    for transport, figures in result["click_to_greeting_audio"].items():
        print(f"{transport:<10} {figures['p50_ms']:>7} {figures['min_ms']:>6} "
              f"{figures['max_ms']:>6}")
    for phase in ("click_to_joined_ms", "click_to_agent_track_ms"):
        figures = summary([c[phase] for c in calls["livekit"]])
        result[f"livekit_{phase}"] = figures
        print(f"livekit {phase}: p50 {figures['p50_ms']} ms (min {figures['min_ms']}, "
              f"max {figures['max_ms']})")
    print("LiveKit routes:", sorted({r for c in calls["livekit"] for r in c["routes"]}))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "widget_transports.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
