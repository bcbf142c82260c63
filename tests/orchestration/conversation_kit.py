"""Drive the agents' flows (orchestration/agents/flows/) on the engine with text turns,
below the supervisor: real NLU, the agents' real tools and stores (from an
``AgentSystem`` in a temporary data directory), the caller's memory, and the call's
events on a real bus written by a real ``BusLog`` to a real SQLite log.

``ScriptedCall`` is a driver, not a stand-in for anything under test: it routes a turn to
the waiting run if ``FlowHost.match`` takes it, else to the agent owning the intent, as
the supervisor's rules 2 and 3 do (the global intents are the supervisor's own business).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

from memory.router import MemoryRouter
from orchestration.agents.flow_host import FlowHost
from orchestration.agents.system import AgentSystem
from orchestration.log.buslog import BusLog, attach_bus
from orchestration.log.events import EventBus, EventRecorder
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.store import View
from orchestration.log.views import project
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.call_run import Conversation
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.engine import Engine
from orchestration.workflow.loader import load_file
from orchestration.workflow.memory_tools import CallTools
from orchestration.workflow.runs import Turn

CONVERTED = Path(__file__).parents[2] / "orchestration" / "agents" / "flows"
FLOWS = ("scheduling", "support", "workspace", "ops")
SLOT_NAMES = ("date", "time", "service", "note", "number")
TODAY = date(2026, 11, 26)  # a Thursday: "Tuesday" is 2026-12-01


class Agents:
    """One data directory's agents: tools, NLU, memory, a log, an engine, the flows."""

    def __init__(self, data_dir: Path) -> None:
        self.bus = EventBus()
        self.recorder = EventRecorder(self.bus)
        self.system = AgentSystem(self.bus, data_dir, today=lambda: TODAY)
        self.flows: dict[str, WorkflowDef] = {
            name: load_file(CONVERTED / f"{name}.yaml", self.system.registry) for name in FLOWS}
        self.routes = {i: f.name for f in self.flows.values() for i in f.intents}
        self.store = SQLiteEventStore(data_dir / "events.db", project)
        self.log: BusLog = attach_bus(self.bus, self.store)
        self.engine = Engine(self.store, self.system.registry, clock=self.system.clock,
                             breakers=self.system.breakers, policy=self.system.policy)

    def close(self) -> None:
        self.log.close()
        self.store.close()
        self.system.close()

    def stored(self, session: str) -> View:
        self.log.flush()
        view = self.store.view(f"call:{session}")
        assert view is not None
        return view


class ScriptedCall:
    def __init__(self, agents: Agents, session: str, caller: str | None = "+15005550006",
                 view: View | None = None) -> None:
        self.agents = agents
        self.session = session
        system = agents.system
        self.conversation = Conversation(agents.bus, session, view)
        self.router = MemoryRouter(system.memory, caller, self.conversation.emit)
        runner = ToolRunner(CallTools(system.registry, self.router), system.clock,
                            system.runner.rng, system.breakers, policy=system.policy)

        async def durable() -> None:
            await asyncio.to_thread(agents.log.flush)

        self.host = FlowHost(agents.engine, self.conversation, agents.flows, runner=runner,
                             router=self.router, today=lambda: TODAY,
                             services=system.spoken_services, durable=durable)

    async def say(self, text: str) -> str:
        return " ".join([t async for t in self.turn(text)])

    async def turn(self, text: str) -> AsyncIterator[str]:
        nlu = self.agents.system.nlu.parse(text, self.host.expected_intents())
        slots = {k: v for k, v in nlu.slots.items() if k in SLOT_NAMES}
        if "note" in slots and nlu.intent != "note_add":
            slots.pop("note")
        turn = Turn(nlu.intent, nlu.text, tuple(self.host.fill(slots)))
        target = self.host.match(turn) if self.host.waiting else None
        if target is not None:
            async for said in self.host.answer(turn, target):
                yield said
            return
        name = self.agents.routes.get(nlu.intent)
        if name is None:
            yield f"(not understood: {nlu.intent})"
            return
        flow = self.agents.flows[name]
        self.host.clear(flow.slots)
        changed = self.host.fill({k: v for k, v in nlu.slots.items() if k in flow.slots})
        async for said in self.host.start(name, Turn(nlu.intent, nlu.text, tuple(changed))):
            yield said

    def events(self, type: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.agents.recorder.of_type(type, self.session)]
