"""`voxgate serve` and `voxgate call` as a user runs them: two processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.evaluation.speech import SOUNDS_DIR
from gateway.servers.ports import free_port

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("data")
    config = data / "voxgate.yaml"
    config.write_text("voice:\n  turn:\n    reprompt_after_s: 20\n")
    port = free_port()
    env = {**os.environ, "VOXGATE_DATA_DIR": str(data), "VOXGATE_AGENT": "basic"}
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((data / "serve.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.mark.parametrize("protocol", ["twilio", "browser"])
def test_voxgate_call_prints_both_sides_and_saves_audio(
    served: str, tmp_path: Path, protocol: str
) -> None:
    out = tmp_path / "agent.wav"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "call",
            str(SOUNDS_DIR / "conf-locked.wav"),
            "--protocol",
            protocol,
            "--url",
            served,
            "--out",
            str(out),
            "--tail",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    caller = [line for line in lines if "caller:" in line]
    agent = [line for line in lines if "agent:" in line]
    assert any("conference is locked" in line.lower() for line in caller), done.stdout
    assert any("Hello, this is voxgate" in line for line in agent), done.stdout
    assert any("I heard" in line for line in agent), done.stdout
    assert all(line.lstrip().startswith("[") for line in caller + agent)  # with times
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        assert wav.getnframes() > 16000 * 3


def test_voxgate_call_reports_an_unreachable_gateway(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "call",
            str(SOUNDS_DIR / "conf-locked.wav"),
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "connect" in (done.stderr + done.stdout).lower()
