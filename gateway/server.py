"""Run the gateway in a background thread on a loopback port (tests, benchmarks, eval)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from gateway.runtime import Runtime


class ServerThread:
    """``with ServerThread(app) as server: ... server.url`` -- a real uvicorn server."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", ws_max_size=1 << 20, lifespan="on",
            # X-Forwarded-For is the app's to trust (settings.trusted_proxies), not uvicorn's
            proxy_headers=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="voxgate-server", daemon=True)
        self.host = host
        self.port = port

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def start(self, timeout_s: float = 120.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the gateway failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway did not start in time")
            time.sleep(0.05)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
