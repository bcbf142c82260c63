"""The orchestrator: one data directory's log, tools, workflows, engine and scheduler.

This is what the CLI and the REST API drive. The data directory holds ``events.db`` (the
event log), ``vault.db`` (the unmasked values active runs need: ``orchestration/log/vault.py``)
and, optionally, ``workflows/*.yaml`` with the operator's own definitions, loaded and
checked beside the shipped catalog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestration.catalog.registry import build_registry, load_catalog
from orchestration.catalog.sample_data import LocalSystems
from orchestration.clock import Clock, SystemClock
from orchestration.log.backends import database_url as env_database_url
from orchestration.log.backends import is_postgres_url, open_store
from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.pg_vault import PostgresVault
from orchestration.log.redact import redact_data
from orchestration.log.replay import ReplayReport, replay
from orchestration.log.store import NewEvent
from orchestration.log.vault import SealedValues, Sealing, Vault
from orchestration.log.views import project
from orchestration.patterns.llm import TextModel
from orchestration.patterns.policy import Policy
from orchestration.patterns.pools import ObservedBulkhead
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.diagram import to_graph, to_mermaid
from orchestration.workflow.engine import Engine, SignalResult
from orchestration.workflow.input_schema import describe_input
from orchestration.workflow.loader import load_dir
from orchestration.workflow.pg_leases import RunLeases, take_over
from orchestration.workflow.schedule import Scheduler

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    return Path(os.environ.get("VOXGATE_DATA_DIR", ".voxgate"))


class Orchestrator:
    def __init__(
        self, data_dir: str | Path | None = None, *, clock: Clock | None = None,
        rng: random.Random | None = None, registry: ToolRegistry | None = None,
        model: TextModel | None = None, policy: Policy | None = None, redact: bool = True,
        database_url: str | None = None,
    ) -> None:
        """``redact``: mask the runs' events before they are written (the gateway passes
        its ``redact`` setting, ``VOXGATE_REDACT``; off only for a private debugging run).
        ``database_url`` (default ``VOXGATE_DATABASE_URL``): the event log on PostgreSQL
        instead of ``events.db`` in the data directory."""
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.clock = clock or SystemClock()
        self.store_location: str | Path = (database_url or env_database_url()
                                           or self.data_dir / "events.db")
        self.store = open_store(self.store_location, project, clock=self.clock.now)
        # replicas on one PostgreSQL log: a run is advanced by the holder of its lease
        self.leases = (RunLeases(str(self.store_location))
                       if is_postgres_url(self.store_location) else None)
        self.sealing = Sealing(redact_data, self._vault()) if redact else None
        self.systems = LocalSystems()
        # text tools share the "llm" pool: a slow model cannot tie up every worker
        pools = {"tools": ObservedBulkhead("tools", 8, 64, self._pool_event),
                 "llm": ObservedBulkhead("llm", 4, 32, self._pool_event)}
        self.registry = registry or build_registry(model, self.systems, pools)
        definitions = load_catalog(self.registry)
        own = self.data_dir / "workflows"
        if own.is_dir():
            definitions.update(load_dir(own, self.registry))
        self.engine = Engine(self.store, self.registry, definitions.values(), clock=self.clock,
                             rng=rng, sealing=self.sealing, leases=self.leases,
                             policy=policy or Policy.load(
                                 clock=lambda: datetime.fromtimestamp(self.clock.now())))
        self.scheduler = Scheduler(self.engine)

    def _vault(self) -> SealedValues:
        # replicas share a run's originals with its log; one process keeps its own file
        if isinstance(self.store, PostgresEventStore):
            return PostgresVault(self.store)
        return Vault(self.data_dir / "vault.db")

    def _pool_event(self, name: str, type: str, data: dict[str, Any]) -> None:
        self.store.append([NewEvent(f"pool:{name}", type, data, self.clock.now())])

    # --- queries -------------------------------------------------------------------

    def workflows(self) -> list[dict[str, Any]]:
        return [
            {"name": d.name, "description": d.description.strip(), "states": len(d.states),
             "saga": d.saga, "schedule": d.schedule.cron if d.schedule else None,
             "input": describe_input(d)}
            for d in sorted(self.engine.definitions.values(), key=lambda d: d.name)
        ]

    def workflow(self, name: str) -> dict[str, Any]:
        defn = self.engine.definition(name)
        return {"name": name, "definition": defn.model_dump(mode="json"),
                "graph": to_graph(defn), "mermaid": to_mermaid(defn)}

    def status(self, instance_id: str) -> dict[str, Any]:
        return self.engine.state(instance_id)

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        views = self.store.views("wf:").values()
        return [{k: v[k] for k in ("id", "name", "status", "state", "updated_ts")}
                for v in views if status is None or v["status"] == status]

    def events(self, instance_id: str, after: int = 0,
               limit: int | None = 1000) -> list[dict[str, Any]]:
        self.engine.state(instance_id)  # 404 for an unknown id
        return [e.to_dict() for e in self.store.read(after, f"wf:{instance_id}", limit)]

    # --- commands ------------------------------------------------------------------

    async def start(self, name: str, input: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ident = await self.engine.start(name, input)
        return self.engine.state(ident)

    async def signal(self, instance_id: str, event: str,
                     data: Mapping[str, Any] | None = None) -> SignalResult:
        return await self.engine.signal(instance_id, event, data)

    async def tick(self) -> dict[str, Any]:
        timers = await self.engine.tick()
        started = await self.scheduler.tick()
        if self.leases is None:
            return {"timers_fired": timers, "scheduled_started": started}
        # runs a dead replica left mid-step (its leases went with its connection)
        taken = await take_over(self.engine, self.leases)
        return {"timers_fired": timers, "scheduled_started": started, "taken_over": taken}

    async def recover(self) -> list[str]:
        """Resume every instance a crash left active; call once at start-up."""
        if self.sealing is not None:
            self.sealing.prune(self.store)
        if self.leases is not None:  # not the runs live replicas are advancing
            return await take_over(self.engine, self.leases)
        return await self.engine.resume_all()

    async def run_forever(self, interval_s: float = 1.0) -> None:
        """Resume crashed runs, then fire timers and schedules until cancelled."""
        task = await self.start_background(interval_s)
        try:
            await task
        finally:
            task.cancel()

    async def start_background(self, interval_s: float = 1.0) -> asyncio.Task[None]:
        """Recover and tick once now, then keep ticking in a task (cancel it to stop)."""
        await self.recover()
        await self.tick()

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.tick()
                except Exception:
                    log.exception("orchestrator tick failed")

        return asyncio.create_task(loop())

    def replay(self, fix: bool = False) -> ReplayReport:
        return replay(self.store, fix)

    def close(self) -> None:
        for pool in self.registry.bulkheads.values():
            pool.shutdown(wait=False)
        self.store.close()
        if self.leases is not None:
            self.leases.close()
        if self.sealing is not None:
            self.sealing.vault.close()
