"""Everything the agents share across calls, and the factory the gateway calls per call.

    factory = make_agent_factory(bus, data_dir)            # once, at start-up
    agent = factory(CallInfo(session_id, "twilio", "+15005550006"))   # per call

``AgentSystem`` loads the configuration (checked as a whole), builds the NLU once
(training the intent model takes about a second, so it is cached per process and
configuration), opens the stores under the data directory (``agents.db`` for bookings,
tickets and ops status and alerts, ``memory.db`` for long-term memory, ``outbox.db`` for
booking confirmations), or all of them in PostgreSQL when ``database_url`` is given
(``VOXGATE_DATABASE_URL``: the replicas then share one calendar), registers the tools
and checks every flow against them. Circuit breakers are shared by all calls, so a dead
helpdesk is noticed once, not once per call.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx

from memory.embeddings import MiniLmEncoder
from memory.store import LongTermMemory, MemoryStore
from orchestration.agents import ops, scheduling, support, workspace
from orchestration.agents.agent import AgentFactory, CallInfo
from orchestration.agents.config import AgentsConfig, check, load
from orchestration.agents.context import AgentContext
from orchestration.agents.llm_agent import LlmBrain, LlmSupervisor
from orchestration.agents.nlu.parser import LocalNlu, NluResult
from orchestration.agents.ops_readings import ReadingsProvider
from orchestration.agents.supervisor import Supervisor
from orchestration.clock import Clock, SystemClock
from orchestration.errors import OrchestrationError
from orchestration.log.events import EventBus
from orchestration.log.store import View
from orchestration.log.tables import Tables, open_tables
from orchestration.patterns.breaker import BreakerPolicy, Breakers
from orchestration.patterns.policy import Policy
from orchestration.patterns.runner import ToolRunner
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow import confirmation
from orchestration.workflow.call_run import Durability
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.engine import Engine
from orchestration.workflow.memory_tools import register_memory_tools

CONFIG_ENV = "VOXGATE_AGENTS_CONFIG"
SYSTEM_SESSION = "agents"  # bus session id for events that belong to no call (breakers)
_NLU_CACHE: dict[str, LocalNlu] = {}
# connections of each store pool on PostgreSQL (the memory's, the agents' tables'): tools
# and memory reads run one at a time per call, mostly on the event loop's thread
STORE_POOL_SIZE = 2


def build_nlu(config: AgentsConfig, intents: dict[str, Any],
              services: dict[str, list[str]], today: Callable[[], date]) -> LocalNlu:
    """The local NLU, trained once per process for the same intents and settings."""
    key = hashlib.sha256(json.dumps(
        [intents, config.nlu.model_dump(), services], sort_keys=True, default=str
    ).encode()).hexdigest()
    nlu = _NLU_CACHE.get(key)
    if nlu is None:
        nlu = LocalNlu(intents, config.nlu, services, today)
        _NLU_CACHE[key] = nlu
    elif nlu.today is not today:
        nlu = LocalNlu.__new__(LocalNlu)
        nlu.__dict__.update(_NLU_CACHE[key].__dict__)
        nlu.today = today
    return nlu


class ResumeError(OrchestrationError):
    """A call cannot be resumed from the session it names."""


class AgentSystem:
    def __init__(
        self,
        bus: EventBus,
        data_dir: Path,
        config_path: Path | None = None,
        *,
        overrides: dict[str, Any] | None = None,
        clock: Clock | None = None,
        today: Callable[[], date] = date.today,
        rng: random.Random | None = None,
        http: httpx.AsyncClient | None = None,
        breaker_policy: BreakerPolicy | None = None,
        policy: Policy | None = None,
        readings: dict[str, ReadingsProvider] | None = None,
        calls: Callable[[str], View | None] | None = None,
        durable: Durability | None = None,
        sender: confirmation.Sender | None = None,
        database_url: str | None = None,
    ) -> None:
        """``calls``: a call's view in the event log by session id (``call:<session>``),
        for ``CallInfo.resume_from``; ``durable``: awaited before a flow's tool runs,
        returns once the call's events so far are in the log (the log writer's flush);
        ``sender``: where booking confirmations go (default: the outbox table);
        ``database_url``: the stores in PostgreSQL instead of files in ``data_dir``."""
        self.bus = bus
        self.calls = calls
        self.durable = durable
        self.clock = clock or SystemClock()
        self.today = today
        config, flows, intents = load(config_path, overrides)
        self.config = config
        self.source = str(config_path or "default.yaml")
        services = {name: list(s.aliases) for name, s in config.ops.services.items()}
        self.spoken_services = {name: s.spoken or name for name, s in config.ops.services.items()}
        self.nlu = build_nlu(config, intents, services, today)
        self.registry = self._stores_and_tools(data_dir, http, readings, sender, database_url)
        check(config, flows, self.nlu.intents, self.registry, self.source)
        self.flows: dict[str, WorkflowDef] = {f.name: f for f in flows}
        self.routes = {intent: f.name for f in flows for intent in f.intents}

        def breaker_event(name: str, type: str, data: dict[str, Any]) -> None:
            bus.emit(SYSTEM_SESSION, type, {"breaker": name, **data})

        self.breakers = Breakers(
            self.clock, breaker_policy or BreakerPolicy(failure_threshold=3, cooldown=30.0),
            emit=breaker_event)
        # every tool call is checked against the agent's permissions and the policy rules
        # (orchestration/patterns/policies.yaml) before it runs
        self.policy = policy or Policy.load(
            clock=lambda: datetime.fromtimestamp(self.clock.now()))
        self.runner = ToolRunner(self.registry, self.clock, rng or random.Random(),
                                 self.breakers, policy=self.policy)
        # the workflow engine runs each call's flows (call-bound runs: no log of its own)
        self.engine = Engine(None, self.registry, clock=self.clock, breakers=self.breakers,
                             policy=self.policy)
        # what each call's agents get: the parts above they use, not this whole object
        self.context = self._context()
        self.llm: LlmBrain | None = None
        if config.nlu.backend == "llm":
            self.llm = LlmBrain(self.context, http)

    def _context(self) -> AgentContext:
        return AgentContext(
            bus=self.bus, config=self.config, source=self.source, nlu=self.nlu,
            today=self.today, clock=self.clock, memory=self.memory, registry=self.registry,
            runner=self.runner, breakers=self.breakers, policy=self.policy, engine=self.engine,
            flows=self.flows, routes=self.routes, spoken_services=self.spoken_services,
            durable=self.durable)

    def _stores_and_tools(self, data_dir: Path, http: httpx.AsyncClient | None,
                          readings: dict[str, ReadingsProvider] | None,
                          sender: confirmation.Sender | None,
                          database_url: str | None) -> ToolRegistry:
        config = self.config
        data_dir.mkdir(parents=True, exist_ok=True)
        # one set of tables (agents.db, or the shared database) for the agents' stores
        self.tables: Tables = open_tables(database_url or data_dir / "agents.db",
                                          pool_size=STORE_POOL_SIZE)
        self.calendar = scheduling.Calendar(self.tables, config.scheduling, self.today)
        self.tickets = support.Tickets(self.tables)
        # readings providers the host plugs in (the gateway's own status:
        # gateway/observability/health.py)
        self.ops = ops.OpsMonitor(config.ops, self.tables, self.clock.now, http, readings)
        self.memory = self._memory(data_dir, database_url)
        registry = ToolRegistry()
        scheduling.register(registry, self.calendar, self.clock.now)
        support.register(registry, config.support, self.tickets, self.clock.now, http)
        ops.register(registry, self.ops)
        workspace.register(registry)
        self.outbox: confirmation.LocalOutbox | None = None
        if sender is None:
            sender = self.outbox = confirmation.LocalOutbox(
                self.tables if database_url else data_dir / "outbox.db", self.clock.now)
        confirmation.register(registry, sender)  # the booking saga's confirm step
        register_memory_tools(registry)  # declared; each call binds its own
        return registry

    def _memory(self, data_dir: Path, database_url: str | None) -> LongTermMemory:
        """Long-term memory: in the shared database when there is one (it wins over
        ``memory.path``: every replica must see the same callers), else a SQLite file."""
        config = self.config.memory
        encoder = MiniLmEncoder(config.model_dir) if config.search == "embeddings" else None
        if database_url:
            from memory.pg_store import PostgresMemoryStore

            return PostgresMemoryStore(database_url, encoder, self.clock.now,
                                       pool_size=STORE_POOL_SIZE)
        return MemoryStore(config.path or data_dir / "memory.db", encoder, self.clock.now)

    async def understand(self, text: str, expected: Iterable[str] = ()) -> NluResult:
        return await self.context.understand(text, expected)

    def agent(self, call: CallInfo) -> Supervisor:
        resume = self._stored_call(call.resume_from) if call.resume_from else None
        if self.llm is not None:
            return LlmSupervisor(call, self.context, self.llm, resume)
        return Supervisor(call, self.context, resume)

    def _stored_call(self, session: str) -> View:
        if self.calls is None:
            raise ResumeError(f"cannot resume {session!r}: the agents have no event log")
        view = self.calls(session)
        if view is None or view.get("kind") != "call":
            raise ResumeError(f"cannot resume {session!r}: no such call in the event log")
        return view

    def close(self) -> None:
        self.memory.close()
        if self.outbox is not None:
            self.outbox.close()
        self.tables.close()


def make_agent_factory(bus: EventBus, data_dir: Path, config: Path | None = None,
                       **options: Any) -> AgentFactory:
    """The gateway's agent factory: the front-desk supervisor and its four agents.

    ``config`` is an agents YAML file (default: ``$VOXGATE_AGENTS_CONFIG``, else the
    packaged ``orchestration/agents/default.yaml``). ``options`` go to ``AgentSystem``
    (tests pass ``overrides``, ``today``, ``clock``)."""
    if config is None and os.environ.get(CONFIG_ENV):
        config = Path(os.environ[CONFIG_ENV])
    system = AgentSystem(bus, data_dir, config, **options)
    factory: AgentFactory = system.agent
    return factory
