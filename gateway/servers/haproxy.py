"""HAProxy (Debian's ``haproxy``) in front of gateway replicas on one port: HTTP and the
call WebSockets, least connections first, a replica taken out while its ``/healthz`` is not
200 (starting, draining) and put back when it is. Used by `voxgate cluster`; a production
load balancer does the same (docs/deployment.md)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT_S = 20.0
MISSING = "haproxy is not installed: `make apt` installs Debian's haproxy package"


def config(port: int, replicas: Sequence[tuple[str, int]]) -> str:
    """The configuration: ``replicas`` are (name, port) on 127.0.0.1."""
    servers = "\n".join(f"  server {name} 127.0.0.1:{p} check inter 1s fall 2 rise 1"
                        for name, p in replicas)
    return f"""global
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  # a call's WebSocket lives as long as the call
  timeout tunnel 2h
  # the replicas see the client's address (they trust 127.0.0.1: trusted_proxies)
  option forwardfor

frontend voxgate
  bind 127.0.0.1:{port}
  default_backend replicas

backend replicas
  balance leastconn
  option httpchk GET /healthz
  http-check expect status 200
{servers}
"""


class HAProxy:
    def __init__(self, root: Path, port: int, replicas: Sequence[tuple[str, int]]) -> None:
        self.root, self.port = root, port
        self.path = root / "haproxy.cfg"
        self.path.write_text(config(port, replicas))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError(MISSING)
        check = subprocess.run([binary, "-c", "-f", str(self.path)], capture_output=True,
                               text=True, timeout=10, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration: {check.stdout}{check.stderr}")
        with (self.root / "haproxy.log").open("ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(self.path)], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited ({self.proc.returncode}): see "
                                   f"{self.root / 'haproxy.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not listen on {self.port} in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
