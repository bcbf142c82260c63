"""``voxgate livekit-worker`` processes for the LiveKit tests: started on a test server,
waited for until registered, and until they have room for a call again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.servers.livekit import LiveKitServer

REGISTER_TIMEOUT_S = 180  # model loading (the agents' NLU too) on a busy two-core machine


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(server: LiveKitServer, name: str, folder: Path, *extra: str,
                 env: dict[str, str] | None = None) -> Worker:
    """A ``voxgate livekit-worker`` process taking one call at a time, with the basic
    agent unless ``env`` says otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "worker.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VOXGATE_AGENT": "basic",
           "VOXGATE_DATA_DIR": str(folder / "data"), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "livekit-worker", "--url", server.url,
             "--api-key", server.api_key, "--api-secret", server.api_secret,
             "--capacity", "1", "--name", name, "--drain-timeout", "30", *extra],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    return Worker(name, proc, log)


def wait_registered(worker: Worker) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while "registered worker" not in worker.text():
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            worker.proc.kill()
            raise AssertionError(f"worker {worker.name} did not register: {worker.text()[-3000:]}")
        time.sleep(0.2)


def wait_available(*workers: Worker) -> None:
    """Until each worker has told the server it has room again: a room created while
    every worker is full gets no agent at all (the server does not queue dispatches). A
    worker reports each call's start ("at full capacity", capacity 1) and end ("marking
    as available") at once."""
    deadline = time.monotonic() + 30
    for worker in workers:
        while True:
            text = worker.text()
            calls = text.count("received job request")
            if (text.count("marking as available") >= calls and "at full capacity" not in
                    text.rsplit("marking as available", 1)[-1]):
                break
            assert time.monotonic() < deadline, f"{worker.name} stays full"
            time.sleep(0.1)
