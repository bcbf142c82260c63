"""`voxgate serve` in a subprocess on a loopback port, as an operator runs it: its /proc
figures are its own, and signals reach the real uvicorn server. Used by the drain and
fault tests and by benchmarks/soak.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from gateway.servers.ports import free_port

VOXGATE = Path(sys.executable).parent / "voxgate"
ADMIN_TOKEN = "soak-admin-token-0123456789abcdef"  # the debug endpoint is admin only



class ServeProcess:
    """``with ServeProcess(data_dir, VOXGATE_AGENT="basic") as gw: gw.url ...``"""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "serve.log"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "VOXGATE_DATA_DIR": str(data_dir),
                    "VOXGATE_ADMIN_TOKEN": ADMIN_TOKEN, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 180.0) -> ServeProcess:
        command = [str(VOXGATE), "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voxgate serve exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"voxgate serve did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def debug(self, objects: int = 0, trim: bool = False) -> dict[str, Any]:
        """The server's own view: tasks, threads, fds, sessions, pools
        (gateway/observability/debug.py);
        with ``objects``, the most common object types too; ``trim``: after malloc_trim."""
        resp = httpx.get(f"{self.url}/api/debug/runtime", headers=self.headers, timeout=30,
                         params={"objects": objects, "trim": trim})
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def proc_figures(self) -> dict[str, int]:
        """What /proc says from outside: open fds, threads, resident memory (kB)."""
        base = Path(f"/proc/{self.pid}")
        rss = 0
        for line in (base / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return {"fds": len(os.listdir(base / "fd")), "threads": len(os.listdir(base / "task")),
                "rss_kb": rss}

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """SIGINT (uvicorn's quick stop), then SIGKILL if it hangs; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
