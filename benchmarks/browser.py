"""Debian's chromium driven by Playwright, with WebGL on SwiftShader and a fake microphone.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``. The fake
microphone plays a WAV file and loops it, so the files made here are speech followed by
long silence: the caller speaks once per test.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

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


def launch(playwright: Playwright, microphone: Path | None = None,
           extra: Sequence[str] = ()) -> Browser:
    args = [*FLAGS, *extra]
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=args, timeout=30_000)


def artifact(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)
