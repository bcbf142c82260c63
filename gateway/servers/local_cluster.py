"""Everything a multi-node deployment has, on one machine, for a person to try (`voxgate
cluster`, `make cluster`): PostgreSQL, the NATS bus, a LiveKit server with a `voxgate
livekit-worker` per replica (when the server is built), N `voxgate serve` replicas sharing
them, and HAProxy in front on one port. Each server runs in a temporary folder on a free
loopback port (HAProxy on the port asked for) and is stopped, in reverse order, on exit.
The database lives in that temporary folder: a cluster's calls are gone when it stops.
The replicas' own folders (recordings, model cache) are under ``data_dir``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.servers import bus, livekit, postgres
from gateway.servers.haproxy import HAProxy
from gateway.servers.serve_process import ServeProcess


@dataclass
class LocalCluster:
    data_dir: Path
    replicas: int = 2
    port: int = 8000
    # a LiveKit server and one `voxgate livekit-worker` per replica, when the server is
    # built (`make livekit`); the widget's data-transport="livekit" then works too
    with_livekit: bool = True
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    database_url: str = ""
    bus_url: str = ""
    livekit_url: str = ""
    nodes: list[ServeProcess] = field(default_factory=list)
    workers: list[livekit.WorkerProcess] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalCluster:
        stack = self._stack
        try:
            pg = stack.enter_context(postgres.running(durable=True))
            self.database_url = pg.new_database()
            self.bus_url = stack.enter_context(bus.running("nats")).url
            # one secret for every replica: a widget token minted by one is good on another
            env = {"VOXGATE_DATABASE_URL": self.database_url, "VOXGATE_BUS_URL": self.bus_url,
                   "VOXGATE_TOKEN_SECRET": secrets.token_urlsafe(32),
                   "VOXGATE_ADMIN_TOKEN": self.admin_token,
                   "VOXGATE_TRUSTED_PROXIES": '["127.0.0.1"]', "VOXGATE_PUBLIC_URL": self.url}
            if self.with_livekit and livekit.find_binary() is not None:
                env.update(self._livekit(stack, env))
            for i in range(1, self.replicas + 1):
                folder = self.data_dir / f"node-{i}"
                folder.mkdir(parents=True, exist_ok=True)
                node = ServeProcess(folder, VOXGATE_NODE_ID=f"node-{i}", **env)
                self.nodes.append(stack.enter_context(node))
            root = Path(stack.enter_context(_folder(self.data_dir / "haproxy")))
            proxy = HAProxy(root, self.port, [(f"node-{i + 1}", n.port)
                                              for i, n in enumerate(self.nodes)])
            proxy.start()
            stack.callback(proxy.stop)
        except BaseException:
            stack.close()
            raise
        return self

    def _livekit(self, stack: contextlib.ExitStack, env: dict[str, str]) -> dict[str, str]:
        """The LiveKit server and a worker per replica (the front-desk agents, on the
        cluster's database and bus); the replicas' settings to mint room tokens."""
        server = stack.enter_context(livekit.running())
        self.livekit_url = server.url
        for i in range(1, self.replicas + 1):
            worker = livekit.start_worker(
                server, f"worker-{i}", self.data_dir / f"worker-{i}", "--capacity", "4",
                env={**env, "VOXGATE_AGENT": "supervisor", "VOXGATE_NODE_ID": f"worker-{i}"})
            stack.callback(_stop, worker)
            self.workers.append(worker)
        for worker in self.workers:
            livekit.wait_registered(worker)
        return {"VOXGATE_LIVEKIT_URL": server.url, "VOXGATE_LIVEKIT_API_KEY": server.api_key,
                "VOXGATE_LIVEKIT_API_SECRET": server.api_secret}

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "admin_token": self.admin_token,
                "database_url": self.database_url, "bus_url": self.bus_url,
                "livekit_url": self.livekit_url or None,
                "livekit_workers": [w.name for w in self.workers],
                "nodes": {f"node-{i + 1}": n.url for i, n in enumerate(self.nodes)}}

    def dead(self) -> list[str]:
        """Replicas whose process has exited."""
        return [f"node-{i + 1}" for i, n in enumerate(self.nodes)
                if n.proc is not None and n.proc.poll() is not None]

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __str__(self) -> str:
        return json.dumps(self.describe(), indent=2)


def _stop(worker: livekit.WorkerProcess) -> None:
    if worker.proc.poll() is None:
        worker.proc.terminate()  # SIGTERM drains the worker
        try:
            worker.proc.wait(40)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(5)


@contextlib.contextmanager
def _folder(path: Path) -> Any:
    path.mkdir(parents=True, exist_ok=True)
    yield path
