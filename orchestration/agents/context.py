"""What a call's agents get from the agent system: the shared parts they use, no more.

The supervisors take an ``AgentContext`` instead of the whole ``AgentSystem``: the system
builds the context and the supervisors, and they know nothing of it, so no import goes
back from them to the system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from memory.store import LongTermMemory
from orchestration.agents.config import AgentsConfig
from orchestration.agents.nlu.parser import LocalNlu, NluResult
from orchestration.clock import Clock
from orchestration.log.events import EventBus
from orchestration.patterns.breaker import Breakers
from orchestration.patterns.policy import Policy
from orchestration.patterns.runner import ToolRunner
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.call_run import Durability
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.engine import Engine


@dataclass(frozen=True, slots=True)
class AgentContext:
    bus: EventBus
    config: AgentsConfig
    source: str  # the configuration's file, named in its errors
    nlu: LocalNlu
    today: Callable[[], date]
    clock: Clock
    memory: LongTermMemory  # long-term memory; each call has its own router on it
    registry: ToolRegistry
    runner: ToolRunner
    breakers: Breakers  # shared by every call, so a dead service is noticed once
    policy: Policy
    engine: Engine  # runs each call's flows
    flows: Mapping[str, WorkflowDef]
    routes: Mapping[str, str]  # intent -> the flow that handles it
    spoken_services: Mapping[str, str]
    durable: Durability | None

    async def understand(self, text: str, expected: Iterable[str] = ()) -> NluResult:
        return self.nlu.parse(text, expected)
