"""Run evaluation suites: plan the runs, start gateways as isolation asks, collect records.

A run is (suite, scenario, variant, repeat). Voice runs need a gateway: with ``--url``
the one already running (state carries over between runs); otherwise one started here,
fresh for every run (``isolation: run``, the default: a repeated run starts from the same
empty data directory, so a different outcome is the agent's doing) or once per suite
(``isolation: suite``). Workflow runs always get a fresh orchestrator and data directory.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.evaluation.gateway import (
    Credentials,
    EvalGatewayError,
    Gateway,
    InProcessGateway,
    RemoteGateway,
    SubprocessGateway,
)
from gateway.evaluation.report import RunRecord
from gateway.evaluation.scenario import VoiceScenario, VoiceSuite, WorkflowScenario, WorkflowSuite
from gateway.evaluation.voice import CallerVoice, run_voice
from gateway.evaluation.workflows import run_workflow

Suite = VoiceSuite | WorkflowSuite


@dataclass
class Options:
    url: str | None = None  # a running gateway; None: start one here
    data_dir: Path | None = None  # the running gateway's data directory, to audit its log
    server_pid: int | None = None  # the running gateway's pid, to read its CPU time
    server: Literal["thread", "subprocess"] = "thread"
    repeat: int | None = None  # instead of each suite's
    variants: list[str] | None = None  # instead of each voice suite's
    scenarios: list[str] = field(default_factory=list)  # only these (names or suite/name)
    keep: Path | None = None  # keep the runs' data directories here
    # what a production gateway at ``url`` asks of a caller (docs/security.md)
    credentials: Credentials = field(default_factory=Credentials)


@dataclass(frozen=True)
class Job:
    suite: Suite
    scenario: VoiceScenario | WorkflowScenario
    variant: str
    repeat: int

    @property
    def label(self) -> str:
        extra = "" if self.variant == "clean" else f" [{self.variant}]"
        return f"{self.suite.suite}/{self.scenario.name}{extra} #{self.repeat + 1}"


def _wanted(suite: Suite, name: str, only: list[str]) -> bool:
    return not only or name in only or f"{suite.suite}/{name}" in only


def plan(suites: list[Suite], options: Options) -> list[Job]:
    jobs = []
    for suite in suites:
        repeat = options.repeat or suite.repeat
        variants = (options.variants or suite.variants) if isinstance(suite, VoiceSuite) \
            else ["clean"]
        for scenario in suite.scenarios:
            if not _wanted(suite, scenario.name, options.scenarios):
                continue
            for variant in variants:
                for r in range(repeat):
                    jobs.append(Job(suite, scenario, variant, r))
    return jobs


class _Gateways:
    """Starts (and stops) the gateways the jobs need, following each suite's isolation."""

    def __init__(self, options: Options, root: Path) -> None:
        self.options = options
        self.root = root
        self.count = 0
        self.current: tuple[str, Gateway] | None = None
        self.remote = (RemoteGateway(options.url, options.data_dir, options.server_pid,
                                     options.credentials) if options.url else None)

    def for_job(self, job: Job) -> Gateway:
        if self.remote is not None:
            return self.remote
        assert isinstance(job.suite, VoiceSuite)
        key = job.suite.suite if job.suite.isolation == "suite" else job.label
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        self.close()
        self.count += 1
        data_dir = self.root / f"gateway-{self.count:03d}"
        data_dir.mkdir(parents=True)
        cls = SubprocessGateway if self.options.server == "subprocess" else InProcessGateway
        gateway: Gateway = cls(data_dir, job.suite.agents)
        self.current = (key, gateway)
        return gateway

    def close(self) -> None:
        if self.current is not None:
            self.current[1].close()
            self.current = None


@contextmanager
def _work_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="voxgate-eval-") as tmp:
        yield Path(tmp)


async def evaluate(suites: list[Suite], options: Options,
                   on_run: Callable[[Job, RunRecord], None] | None = None,
                   on_start: Callable[[Job], None] | None = None) -> list[RunRecord]:
    """Every planned run in order; ``on_start``/``on_run`` report progress."""
    jobs = plan(suites, options)
    records: list[RunRecord] = []
    voice = CallerVoice()
    with _work_dir(options.keep) as root:
        gateways = _Gateways(options, root)
        try:
            for n, job in enumerate(jobs):
                if on_start is not None:
                    on_start(job)
                record = await _run(job, gateways, voice, root / f"run-{n:04d}")
                records.append(record)
                if on_run is not None:
                    on_run(job, record)
        finally:
            gateways.close()
    return records


async def _run(job: Job, gateways: _Gateways, voice: CallerVoice, data_dir: Path) -> RunRecord:
    if isinstance(job.suite, WorkflowSuite):
        assert isinstance(job.scenario, WorkflowScenario)
        return await run_workflow(job.suite, job.scenario, job.repeat, data_dir)
    assert isinstance(job.scenario, VoiceScenario)
    try:
        gateway = gateways.for_job(job)
    except (EvalGatewayError, OSError, RuntimeError) as exc:
        return RunRecord(job.suite.suite, job.scenario.name, job.scenario.tier, job.variant,
                         job.repeat, error=f"gateway: {exc}")
    return await run_voice(job.suite, job.scenario, job.variant, job.repeat, gateway, voice)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
