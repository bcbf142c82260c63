"""`voxgate cluster` as a person runs it: PostgreSQL, NATS, two replicas and HAProxy on one
port. Both replicas answer behind the port, a call placed through it is answered, both
replicas list it (the shared log and the live bus), and SIGTERM stops every server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.servers.ports import free_port

pytestmark = pytest.mark.slow
VOXGATE = Path(sys.executable).parent / "voxgate"


def ports(ready: dict[str, Any]) -> list[int]:
    urls = [ready["url"], ready["database_url"], ready["bus_url"], *ready["nodes"].values()]
    return [int(urlsplit(u).port or 0) for u in urls]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_voxgate_cluster_serves_one_port_from_two_replicas(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(VOXGATE), "cluster", "--port", str(port), "--data-dir", str(tmp_path),
         "--no-livekit"],  # the LiveKit parts have tests of their own (test_livekit_*)
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # one JSON line once every server is up (or EOF)
        ready = json.loads(line)["ready"]
        headers = {"Authorization": f"Bearer {ready['admin_token']}"}
        url = ready["url"]
        # least connections between two idle replicas: both take requests
        loads = {json.dumps(httpx.get(f"{url}/healthz").json()["models"]) for _ in range(6)}
        assert len(loads) == 2, loads  # each replica loaded its models once, at its own pace

        # a widget token from node-1 opens a call on whichever replica HAProxy picks
        # (the replicas share one token secret)
        node_1 = ready["nodes"]["node-1"]
        token = httpx.post(f"{node_1}/api/tokens", json={}, headers=headers).json()["token"]
        pcm, _ = load_prompt("conf-locked")
        result = asyncio.run(run_call(pcm, "browser", url, tail_s=4.0, max_call_s=60,
                                      token=token))
        assert result.agent_replies(), result.errors
        assert result.session_id is not None
        for node in ready["nodes"].values():  # the log and the bus: both know the call
            listed = httpx.get(f"{node}/api/sessions", headers=headers).json()
            assert result.session_id in {s["id"] for s in listed}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)  # waits, and closes the pipe
    assert proc.returncode == 0
    assert not [p for p in ports(ready) if listening(p)]
