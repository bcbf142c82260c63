"""Debian's chromium driven by Playwright, with WebGL on SwiftShader and a fake microphone.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``. The fake
microphone plays a WAV file and loops it, so the files made here are speech followed by
long silence: the caller speaks once per test.
"""

from __future__ import annotations

import contextlib
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Playwright

from gateway.evaluation.speech import load_prompt

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # WebGL without a GPU
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    # a microphone that needs no prompt and plays a file
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def speech_wav(
    path: Path, prompt: str, silence_before_s: float, silence_after_s: float = 60.0
) -> Path:
    """A 16 kHz mono WAV: silence, one Asterisk prompt (real human speech), long silence."""
    pcm, _ = load_prompt(prompt)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(int(32000 * silence_before_s) & ~1) + pcm)
        out.writeframes(bytes(int(32000 * silence_after_s) & ~1))
    return path


def launch(playwright: Playwright, microphone: Path | None = None) -> Browser:
    args = list(FLAGS)
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args, timeout=30_000)


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)


@contextlib.contextmanager
def embedding_page(gateway: str, **data: str) -> Iterator[str]:
    """A page on another origin (``http://localhost:PORT/``) that embeds the gateway's
    widget.js with ``data-KEY="VALUE"`` for each of ``data``. Served from loopback: Chromium
    keeps a page on a public address off loopback ones (Local Network Access)."""
    attributes = "".join(f' data-{key}="{value}"' for key, value in data.items())
    html = (f'<!doctype html><title>shop</title><h1>Shop</h1>'
            f'<script src="{gateway}/widget.js"{attributes}></script>').encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# page.add_init_script: keep every RTCPeerConnection the page makes, for SELECTED_ROUTES
RECORD_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""
# page.evaluate: the ICE candidate pair each connected peer connection selected, as
# "udp 192.0.2.2:50123 -> 127.0.0.1:40001"
SELECTED_ROUTES = """async () => {
  const found = [];
  for (const pc of window.__pcs) {
    if (pc.connectionState !== "connected") continue;
    const stats = [...(await pc.getStats()).values()];
    const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
    for (const t of stats.filter((s) => s.type === "transport" && s.selectedCandidatePairId)) {
      const pair = byId[t.selectedCandidatePairId];
      const local = byId[pair.localCandidateId], remote = byId[pair.remoteCandidateId];
      found.push(`${local.protocol} ${local.address}:${local.port} -> `
                 + `${remote.address}:${remote.port}`);
    }
  }
  return found;
}"""
