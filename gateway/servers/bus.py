"""Throwaway message-bus servers for the tests, the bus benchmark and `voxgate cluster`: Debian's
``nats-server`` (the live bus between gateway nodes, docs/deployment.md) and
``redis-server`` (measured against it by benchmarks/bus_delay.py), each on a free loopback
port in a temporary folder, with bounded waits, stopped at the end.

A server can be killed (SIGKILL, as a crash) and started again on the same port, which is
how the tests take the bus away from running gateways and give it back.

Missing binaries fail the tests that need the server, loudly (CI must not go green
without them); a developer without nats-server sets ``VOXGATE_SKIP_BUS=1`` to skip them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gateway.servers.ports import free_port

SKIP_ENV = "VOXGATE_SKIP_BUS"
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0



class BusServer:
    """One server process: ``start`` (waits until it answers), ``kill``, ``stop``."""

    def __init__(self, kind: str, binary: str, root: Path) -> None:
        self.kind = kind
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "redis" if self.kind == "redis" else "nats"
        return f"{scheme}://127.0.0.1:{self.port}" + ("/0" if self.kind == "redis" else "")

    @property
    def version(self) -> str:
        done = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stdout.strip()

    def _command(self) -> list[str]:
        if self.kind == "redis":
            # no persistence: the live bus carries nothing worth keeping (the log does)
            return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.root), "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--logfile", str(self.root / "server.log")]
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port),
                "-l", str(self.root / "server.log")]

    def start(self) -> None:
        self.proc = subprocess.Popen(self._command(), cwd=self.root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.root / "server.log")
                raise RuntimeError(f"{self.kind} server exited ({self.proc.returncode}): "
                                   f"{log.read_text()[-2000:] if log.exists() else ''}")
            if self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.kind} server did not answer within {_START_TIMEOUT_S} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                if self.kind == "redis":
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
                return s.recv(4) == b"INFO"  # NATS greets every client with INFO {...}
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: connected clients see their connection drop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=_STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()


BINARIES = {"redis": "redis-server", "nats": "nats-server"}
PACKAGES = {"redis": "redis-server", "nats": "nats-server"}


def find(kind: str) -> str | None:
    name = BINARIES[kind]
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if os.path.exists(p)), None)


def missing(kind: str) -> str:
    return (f"{BINARIES[kind]} is not installed: `make apt` installs Debian's "
            f"{PACKAGES[kind]} package; set {SKIP_ENV}=1 to skip these tests on a machine "
            "without it")


@contextlib.contextmanager
def running(kind: str) -> Iterator[BusServer]:
    binary = find(kind)
    if binary is None:
        raise RuntimeError(missing(kind))
    root = Path(tempfile.mkdtemp(prefix=f"voxgate-{kind}-"))
    server = BusServer(kind, binary, root)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def redis_server() -> contextlib.AbstractContextManager[BusServer]:
    return running("redis")


def nats_server() -> contextlib.AbstractContextManager[BusServer]:
    return running("nats")
