"""The gateway an evaluation calls: started in this process, in a child process, or remote.

* ``InProcessGateway`` -- the real app on a loopback port in a thread (``ServerThread``);
  models are loaded once per process and shared by every gateway started after. Server
  CPU is this process's CPU time minus the calling thread's (the caller runs on it), so
  it counts the server's threads (event loop, STT and TTS pools, log writer) only.
* ``SubprocessGateway`` -- ``python -m gateway.evaluation.gateway SPEC`` on a loopback port;
  server CPU is read from ``/proc/<pid>/stat`` (exact, but each start loads the models,
  about 2 s).
* ``RemoteGateway`` -- a gateway already running at ``--url``; its log is audited if its
  data directory is given, its CPU read if its pid is.

All give ``url``, ``data_dir`` (None: no log to audit), ``server_cpu_s()`` (a running
total, None if unknown) and ``close()``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.scenario import Agents
from gateway.server import ServerThread
from orchestration.agents.agent import AgentFactory, basic_agent_factory
from orchestration.log.events import EventBus
from orchestration.log.redact import redact_data
from orchestration.patterns.bulkhead import Bulkhead
from voice.services import VoiceServices

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
START_TIMEOUT_S = 120.0


class EvalGatewayError(RuntimeError):
    """The gateway to evaluate could not be started or reached."""


@dataclass(frozen=True)
class Credentials:
    """What a production gateway asks of a caller (docs/security.md); none in development."""

    token: str | None = None  # widget token: browser calls
    admin_token: str | None = None  # the event stream with the transcripts
    twilio_auth_token: str | None = None  # signs Twilio streams as Twilio does


class Gateway(Protocol):
    url: str
    data_dir: Path | None
    credentials: Credentials

    def server_cpu_s(self) -> float | None: ...

    def close(self) -> None: ...


def agent_factory(agents: Agents, bus: EventBus, data_dir: Path
                  ) -> tuple[AgentFactory, Callable[[], None]]:
    """The factory the suite asks for, and how to release what it opened."""
    if agents.factory == "builtin":
        return basic_agent_factory, lambda: None
    try:
        from orchestration.agents.system import make_agent_factory
    except ImportError as exc:  # the voice agents are an optional part of a checkout
        raise EvalGatewayError(f"the voice agents are not available: {exc}") from exc
    options: dict[str, Any] = {}
    if agents.overrides:
        options["overrides"] = agents.overrides
    if agents.today is not None:
        today: date = agents.today
        options["today"] = lambda: today
    factory = make_agent_factory(bus, data_dir, agents.config, **options)
    # the factory is the agent system's bound ``agent`` method: close its stores after
    owner = getattr(factory, "__self__", None)
    close = getattr(owner, "close", None)
    return factory, (close if callable(close) else lambda: None)


def build_app_parts(data_dir: Path, agents: Agents, voice: VoiceServices[Bulkhead] | None
                    ) -> tuple[Any, Callable[[], None]]:
    settings = Settings(data_dir=data_dir)
    bus = EventBus(redactor=redact_data if settings.redact else None)
    factory, close = agent_factory(agents, bus, data_dir)
    app = create_app(settings, voice=voice, agent_factory=factory, bus=bus)
    # the agents were built before the app: plug in the gateway's own readings, as
    # create_app does for the agents it builds, or "the gateway" is an unknown service
    ops = getattr(getattr(factory, "__self__", None), "ops", None)
    if ops is not None:
        ops.plug("gateway", app.state.readings)
    return app, close


class InProcessGateway:
    _voice: VoiceServices[Bulkhead] | None = None  # shared by every in-process gateway

    def __init__(self, data_dir: Path, agents: Agents) -> None:
        self.credentials = Credentials()  # a development gateway asks for none
        self.data_dir: Path | None = data_dir
        app, self._close_agents = build_app_parts(data_dir, agents, self._shared_voice())
        self._server = ServerThread(app).start(START_TIMEOUT_S)
        self.url = self._server.url

    @classmethod
    def _shared_voice(cls) -> VoiceServices[Bulkhead]:
        if cls._voice is None:
            # its own folder (a joined whisper base model goes there), not a run's, which
            # is deleted when its evaluation ends
            models = Path(tempfile.mkdtemp(prefix="voxgate-eval-models-"))
            atexit.register(shutil.rmtree, models, True)
            cls._voice = VoiceServices.create(Settings(data_dir=models).voice, models, Bulkhead)
        return cls._voice

    def server_cpu_s(self) -> float | None:
        return time.process_time() - time.thread_time()

    def close(self) -> None:
        self._server.stop()
        self._close_agents()


def _proc_cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name (which may hold spaces): utime and stime are 14 and 15
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class SubprocessGateway:
    def __init__(self, data_dir: Path, agents: Agents) -> None:
        self.credentials = Credentials()  # a development gateway asks for none
        self.data_dir: Path | None = data_dir
        spec = json.dumps({"data_dir": str(data_dir), "agents": agents.model_dump(mode="json")})
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        # stdin stays open: the child serves until it reads end-of-file (we close or die)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.evaluation.gateway", spec],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise EvalGatewayError(f"the gateway child did not start (said {line!r})")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    @property
    def pid(self) -> int:
        return self._proc.pid

    def server_cpu_s(self) -> float | None:
        return _proc_cpu_s(self._proc.pid)

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


@dataclass
class RemoteGateway:
    url: str
    data_dir: Path | None = None
    pid: int | None = None
    credentials: Credentials = field(default_factory=Credentials)

    def server_cpu_s(self) -> float | None:
        return _proc_cpu_s(self.pid) if self.pid is not None else None

    def close(self) -> None:
        pass


def _child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    agents = Agents.model_validate(spec["agents"])
    app, close = build_app_parts(Path(spec["data_dir"]), agents, None)
    server = ServerThread(app).start(START_TIMEOUT_S)
    try:
        print(f"READY {server.port}", flush=True)
        sys.stdin.read()  # until the parent closes the pipe
    finally:
        server.stop()
        close()


if __name__ == "__main__":
    _child(sys.argv[1])
