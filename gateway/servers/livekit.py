"""A throwaway LiveKit server: the open source ``livekit-server`` the Makefile builds into
a cache folder, started with ``--dev`` on loopback, on free ports, with its config in a
temporary folder, stopped and removed at the end. The tests start one per test session
(tests/livekit_server.py), the benchmarks one per run.

WebRTC on loopback: the server gathers its ICE host candidates on the loopback interface
only (``interfaces: {includes: [lo]}``; without it pion also offers every other address
of the machine, and on this one the media went over eth0's IPv6 address), which it offers
at all only with ``enable_loopback_candidate``; it advertises ``node_ip`` 127.0.0.1
(``use_external_ip`` off, so it asks no STUN server), takes media on a small free UDP port
range and, if UDP fails, on one TCP port (``allow_tcp_fallback``). docs/deployment.md has
what was measured with other settings (benchmarks/livekit_latency.py).

A missing binary raises ``RuntimeError(MISSING)``: the tests fail loudly (CI must not go
green without them); a developer without Go sets ``VOXGATE_SKIP_LIVEKIT=1`` to skip them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.servers.ports import free_port

SKIP_ENV = "VOXGATE_SKIP_LIVEKIT"
BINARY_ENV = "VOXGATE_LIVEKIT_SERVER"
LOG_ENV = "VOXGATE_LIVEKIT_LOG"  # a path: the server's log is copied there when it stops
VERSION = "v1.13.5"
DEFAULT_BINARY = Path.home() / ".cache" / "voxgate" / f"livekit-{VERSION}" / "server"
_START_TIMEOUT_S = 30
_STOP_TIMEOUT_S = 10
UDP_PORTS = 20  # media ports: one per peer connection (each participant has two)

MISSING = (f"the LiveKit server binary is not built ({DEFAULT_BINARY}): `make livekit` "
           f"builds it with Go from livekit-server@{VERSION}; set {SKIP_ENV}=1 to skip these "
           "tests on a machine without Go")


# how the tests run WebRTC on loopback; a benchmark may override any of them
LOOPBACK_RTC = {
    "interfaces": "{includes: [lo]}",
    "use_external_ip": "false",
    "node_ip": "127.0.0.1",
    "enable_loopback_candidate": "true",
    "allow_tcp_fallback": "true",
}


class LiveKitServer:
    def __init__(self, binary: Path, root: Path, rtc: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.root = root
        self.rtc = {**LOOPBACK_RTC, **(rtc or {})}
        self.port = free_port()
        self.tcp_port = free_port()
        self.udp_start = _free_udp_range(UDP_PORTS)
        self.api_key = "voxgate-test"
        self.api_secret = secrets.token_hex(24)  # 48 characters: no short-secret warning
        self.log = root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        return "\n".join([
            f"port: {self.port}",
            "bind_addresses: [127.0.0.1]",
            "rtc:",
            f"  tcp_port: {self.tcp_port}",
            f"  port_range_start: {self.udp_start}",
            f"  port_range_end: {self.udp_start + UDP_PORTS - 1}",
            *(f"  {key}: {value}" for key, value in self.rtc.items() if value != ""),
            "keys:",
            f"  {self.api_key}: {self.api_secret}",
            "logging:",
            "  level: info",
            "",
        ])

    def start(self) -> None:
        path = self.root / "livekit.yaml"
        path.write_text(self.config(), encoding="utf-8")
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(self.binary), "--dev", "--config", str(path)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"livekit-server exited {self._proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1.0):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"livekit-server did not listen on {self.port} within "
                           f"{_START_TIMEOUT_S} s: {self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(_STOP_TIMEOUT_S)

    def token(self, identity: str, room: str, agent_name: str = "") -> str:
        """A join token for ``room`` (the room is created when its first member joins);
        with ``agent_name``, the room asks for that agent explicitly."""
        from livekit import api
        from livekit.protocol.agent_dispatch import RoomAgentDispatch
        from livekit.protocol.room import RoomConfiguration

        grants = api.VideoGrants(room_join=True, room=room, can_publish=True,
                                 can_subscribe=True, can_publish_data=True)
        token = (api.AccessToken(self.api_key, self.api_secret).with_identity(identity)
                 .with_grants(grants))
        if agent_name:
            token = token.with_room_config(
                RoomConfiguration(agents=[RoomAgentDispatch(agent_name=agent_name)]))
        return token.to_jwt()


def _free_udp_range(count: int) -> int:
    """The first of ``count`` consecutive UDP ports free on loopback now."""
    for _ in range(200):
        start = secrets.randbelow(20_000) + 40_000
        held: list[socket.socket] = []
        try:
            for port in range(start, start + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free UDP ports found")


def find_binary() -> Path | None:
    configured = os.environ.get(BINARY_ENV)
    candidates = [Path(configured)] if configured else [DEFAULT_BINARY]
    on_path = shutil.which("livekit-server")
    if on_path:
        candidates.append(Path(on_path))
    return next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)


@contextlib.contextmanager
def running(rtc: dict[str, str] | None = None) -> Iterator[LiveKitServer]:
    """A server in a temporary folder (``rtc``: overrides of ``LOOPBACK_RTC``; "" drops
    a setting), stopped and removed on exit."""
    binary = find_binary()
    if binary is None:
        raise RuntimeError(MISSING)
    root = Path(tempfile.mkdtemp(prefix="voxgate-livekit-"))
    server = LiveKitServer(binary, root, rtc)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            if keep := os.environ.get(LOG_ENV):  # the server's log, for a post-mortem
                shutil.copy(server.log, keep)
            shutil.rmtree(root, ignore_errors=True)


# --- voxgate livekit-worker processes on such a server (tests, benchmarks) ---------------

WORKER_REGISTER_TIMEOUT_S = 180  # model loading (the agents' NLU too) on a busy two-core machine


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(server: LiveKitServer, name: str, folder: Path, *extra: str,
                 env: dict[str, str] | None = None) -> WorkerProcess:
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
    return WorkerProcess(name, proc, log)


def wait_registered(worker: WorkerProcess) -> None:
    deadline = time.monotonic() + WORKER_REGISTER_TIMEOUT_S
    while "registered worker" not in worker.text():
        if worker.proc.poll() is not None or time.monotonic() > deadline:
            worker.proc.kill()
            raise AssertionError(f"worker {worker.name} did not register: {worker.text()[-3000:]}")
        time.sleep(0.2)


def wait_available(*workers: WorkerProcess) -> None:
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
