"""Everything the agents share across calls, and the factory the gateway calls per call.

    factory = make_agent_factory(bus, data_dir)            # once, at start-up
    agent = factory(CallInfo(session_id, "twilio", "+15005550006"))   # per call

``AgentSystem`` loads the configuration (checked as a whole), builds the NLU once
(training the intent model takes about a second, so it is cached per process and
configuration), opens the stores under the data directory (``agents.db`` for bookings,
tickets and ops status and alerts, ``memory.db`` for long-term memory), registers the
tools and checks every flow against them. Circuit breakers are shared by all calls, so a
dead helpdesk is noticed once, not once per call.
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
from memory.store import MemoryStore
from orchestration import ops, scheduling, support, workspace
from orchestration.agent import AgentFactory, CallInfo
from orchestration.agents_config import AgentsConfig, check, load
from orchestration.breaker import BreakerPolicy, Breakers
from orchestration.clock import Clock, SystemClock
from orchestration.events import EventBus
from orchestration.flow import FlowDef
from orchestration.nlu import LocalNlu, NluResult
from orchestration.ops_readings import ReadingsProvider
from orchestration.policy import Policy
from orchestration.runner import ToolRunner
from orchestration.supervisor import Supervisor
from orchestration.tools import ToolRegistry

CONFIG_ENV = "VOXGATE_AGENTS_CONFIG"
SYSTEM_SESSION = "agents"  # bus session id for events that belong to no call (breakers)
_NLU_CACHE: dict[str, LocalNlu] = {}


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
    ) -> None:
        self.bus = bus
        self.clock = clock or SystemClock()
        self.today = today
        config, flows, intents = load(config_path, overrides)
        self.config = config
        self.source = str(config_path or "default.yaml")
        services = {name: list(s.aliases) for name, s in config.ops.services.items()}
        self.spoken_services = {name: s.spoken or name for name, s in config.ops.services.items()}
        self.nlu = build_nlu(config, intents, services, today)
        data_dir.mkdir(parents=True, exist_ok=True)
        db = data_dir / "agents.db"
        self.calendar = scheduling.Calendar(db, config.scheduling, today)
        self.tickets = support.Tickets(db)
        # readings providers the host plugs in (the gateway's own status: gateway/health.py)
        self.ops = ops.OpsMonitor(config.ops, db, self.clock.now, http, readings)
        encoder = (MiniLmEncoder(config.memory.model_dir)
                   if config.memory.search == "embeddings" else None)
        self.memory = MemoryStore(config.memory.path or data_dir / "memory.db", encoder,
                                  self.clock.now)
        self.registry = ToolRegistry()
        scheduling.register(self.registry, self.calendar, self.clock.now)
        support.register(self.registry, config.support, self.tickets, self.clock.now, http)
        ops.register(self.registry, self.ops)
        workspace.register(self.registry)
        check(config, flows, self.nlu.intents, self.registry, self.source)
        self.flows: dict[str, FlowDef] = {f.name: f for f in flows}
        self.routes = {intent: f.name for f in flows for intent in f.intents}
        def breaker_event(name: str, type: str, data: dict[str, Any]) -> None:
            bus.emit(SYSTEM_SESSION, type, {"breaker": name, **data})

        self.breakers = Breakers(
            self.clock, breaker_policy or BreakerPolicy(failure_threshold=3, cooldown=30.0),
            emit=breaker_event)
        # every tool call is checked against the agent's permissions and the policy rules
        # (orchestration/agents/policies.yaml) before it runs
        self.policy = policy or Policy.load(
            clock=lambda: datetime.fromtimestamp(self.clock.now()))
        self.runner = ToolRunner(self.registry, self.clock, rng or random.Random(),
                                 self.breakers, policy=self.policy)
        self.llm: Any = None
        if config.nlu.backend == "llm":
            from orchestration.llm_agent import LlmBrain

            self.llm = LlmBrain(self, http)

    async def understand(self, text: str, expected: Iterable[str] = ()) -> NluResult:
        return self.nlu.parse(text, expected)

    def agent(self, call: CallInfo) -> Supervisor:
        if self.llm is not None:
            from orchestration.llm_agent import LlmSupervisor

            agent: Supervisor = LlmSupervisor(call, self)
            return agent
        return Supervisor(call, self)

    def close(self) -> None:
        self.memory.close()


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
