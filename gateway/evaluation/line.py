"""Drive the agents through the Agent protocol, as the voice session does, but with text.

``Line`` is one call: ``await line.greet()`` and ``await line.say("...")`` return what the
agent said; ``line.actions`` keeps every action (Say, HangUp, Transfer) and
``line.events(type)`` the bus events of this call. Nothing is faked: the real NLU,
flows, tools, SQLite stores and memory router run under a temporary data directory.
"""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path
from typing import Any

from orchestration.agents.agent import AgentAction, CallInfo, Dtmf, Say, UserTurn
from orchestration.agents.supervisor import Supervisor
from orchestration.agents.system import AgentSystem
from orchestration.log.events import EventBus, EventRecorder

TODAY = date(2026, 11, 26)  # a Thursday: "Tuesday" is 2026-12-01
_ids = itertools.count(1)


def make_system(data_dir: Path, **options: Any) -> tuple[AgentSystem, EventRecorder]:
    bus = EventBus()
    recorder = EventRecorder(bus)
    system = AgentSystem(bus, data_dir, today=lambda: TODAY, **options)
    return system, recorder


class Line:
    def __init__(self, system: AgentSystem, recorder: EventRecorder,
                 caller: str | None = "+15005550006") -> None:
        self.session = f"call{next(_ids)}"
        self.agent: Supervisor = system.agent(CallInfo(self.session, "twilio", caller))
        self.recorder = recorder
        self.actions: list[AgentAction] = []
        self.turns = 0

    async def _collect(self, stream: Any) -> str:
        said = []
        async for action in stream:
            self.actions.append(action)
            if isinstance(action, Say):
                said.append(action.text)
        return " ".join(said)

    async def greet(self) -> str:
        return await self._collect(self.agent.greeting())

    async def say(self, text: str) -> str:
        self.turns += 1
        return await self._collect(self.agent.respond(UserTurn(text, 1000, self.turns)))

    async def press(self, digit: str) -> str:
        return await self._collect(self.agent.respond(Dtmf(digit)))

    def events(self, type: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.recorder.of_type(type, self.session)]
