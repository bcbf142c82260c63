"""The voice agents' flows, run by the workflow engine for one call.

The supervisor owns the conversation; a ``FlowHost`` keeps the part of it the flows
work on, event-sourced in the call's stream (``call_run.Conversation``): the call's
slots (``fill``, ``clear``: ``slots.changed``) and the run of the agent in control
(``start``, ``answer``, ``carry_on``). ``match(turn)`` says, without writing anything,
whether a caller's turn answers the state the run waits in, so the supervisor can hand
the turn to another agent if it does not.

``start``, ``answer`` and ``carry_on`` yield each text to speak as soon as the engine
produces it (the run's ``say`` listener), while the states after it still run: the
caller hears the first sentence while a slow tool is called. A caller who barges in
stops listening, not the run: its states finish in the background and the next turn
waits for them (``settle``).

Expressions in the flows read, beside the run's own ``steps`` and ``vars``: ``slots``,
``spoken`` (the slots as they are said: "Tuesday", "3 PM", "the login service"),
``turn`` (intent, text, changed), ``caller`` (id, name, returning) and ``config``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from memory.router import MemoryRouter
from orchestration.agents.nlu.slots import speak_date, speak_time
from orchestration.log.views import TERMINAL
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.call_run import CallHost, CallRun, Conversation, Durability
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.engine import Engine
from orchestration.workflow.runs import Turn

log = logging.getLogger(__name__)

# what a finished run means to the supervisor
OUTCOMES = {"succeeded": "done", "escalated": "escalate"}


def spoken_slots(slots: Mapping[str, Any], today: date,
                 services: Mapping[str, str]) -> dict[str, Any]:
    """The slots as the agent says them."""
    spoken: dict[str, Any] = {}
    if isinstance(slots.get("date"), str):
        spoken["date"] = speak_date(date.fromisoformat(slots["date"]), today)
    if isinstance(slots.get("time"), str):
        spoken["time"] = speak_time(slots["time"])
    if isinstance(slots.get("service"), str):
        spoken["service"] = services.get(slots["service"], slots["service"])
    return spoken


class FlowHost:
    def __init__(
        self, engine: Engine, conversation: Conversation, flows: Mapping[str, WorkflowDef], *,
        runner: ToolRunner, router: MemoryRouter, today: Callable[[], date] = date.today,
        services: Mapping[str, str] | None = None, durable: Durability | None = None,
    ) -> None:
        self.engine = engine
        self.conversation = conversation
        self.flows = flows
        self.router = router
        self.today = today
        self.services = dict(services or {})
        self.host = CallHost(durable=durable, context=self._context, remember=self._remember,
                             who=lambda: {"caller": self.caller}, runner=runner)
        self.failed_steps = 0  # counted as the runs' steps fail (tool failures)
        self._task: asyncio.Future[None] | None = None
        conversation.observers.append(self._observe)
        self.run = self._restored()

    # --- state ------------------------------------------------------------------------

    @property
    def slots(self) -> dict[str, Any]:
        slots: dict[str, Any] = self.conversation.view["slots"]
        return slots

    @property
    def caller(self) -> dict[str, Any]:
        return {"id": self.router.key, **self.conversation.view["caller"]}

    @property
    def waiting(self) -> bool:
        return self.run is not None and self.engine.waiting(self.run) is not None

    @property
    def outcome(self) -> str | None:
        """None while the run goes on; "done", "escalate", or "failed" once it ended."""
        if self.run is None or self.run.view["status"] not in TERMINAL:
            return None
        return OUTCOMES.get(self.run.view["status"], "failed")

    @property
    def reason(self) -> str:
        return str(self.run.view.get("reason") or "") if self.run is not None else ""

    def expected_intents(self) -> list[str]:
        st = self.engine.waiting(self.run) if self.run is not None else None
        return st.intents if st is not None else []

    def takes_any_turn(self) -> bool:
        """Does the waiting state take any answer (``else``: a note being dictated)?"""
        st = self.engine.waiting(self.run) if self.run is not None else None
        return st is not None and st.else_ is not None

    def prompt(self) -> str:
        return self.engine.prompt(self.run) if self.run is not None else ""

    def match(self, turn: Turn) -> str | None:
        return self.engine.match(self.run, turn) if self.run is not None else None

    def reload(self) -> None:
        """Take the run again from the conversation's view (it was put back, or reopened)."""
        self.run = self._restored()

    # --- slots ------------------------------------------------------------------------

    def fill(self, values: Mapping[str, Any]) -> list[str]:
        """Set slots; the names whose value changed (``slots.changed``, if any)."""
        changed = {k: v for k, v in values.items() if v is not None and self.slots.get(k) != v}
        if changed:
            self.conversation.emit("slots.changed", {"slots": changed})
        return list(changed)

    def clear(self, names: list[str]) -> None:
        gone = {n: None for n in names if n in self.slots}
        if gone:
            self.conversation.emit("slots.changed", {"slots": gone})

    # --- runs -------------------------------------------------------------------------

    async def start(self, name: str, turn: Turn) -> AsyncIterator[str]:
        """Start agent ``name``'s flow on ``turn``; yields what it says."""
        await self.settle()
        ident = f"{name}-{self.conversation.view['runs'] + 1}"
        self.run = CallRun(self.flows[name], ident, self.conversation, self.host)
        self.run.turn = turn
        async for text in self._stream(self.engine.begin(self.run)):
            yield text

    async def answer(self, turn: Turn, target: str | None = None) -> AsyncIterator[str]:
        """Move the waiting run on with ``turn`` (to ``target``, from ``match``)."""
        await self.settle()
        assert self.run is not None
        async for text in self._stream(self.engine.answer(self.run, turn, target)):
            yield text

    async def carry_on(self) -> AsyncIterator[str]:
        """Continue a run rebuilt from the log (resume), if it was mid-way."""
        await self.settle()
        if self.run is not None:
            async for text in self._stream(self.engine.carry_on(self.run)):
                yield text

    async def settle(self) -> None:
        """Wait for the states of an earlier turn still running (its listener left)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                await task
            except Exception:
                log.exception("an agent's flow failed after its caller barged in")

    async def _stream(self, work: Awaitable[Any]) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def run() -> None:
            try:
                await work
            finally:
                queue.put_nowait(None)

        self.host.say = queue.put_nowait
        self._task = task = asyncio.ensure_future(run())
        while (text := await queue.get()) is not None:
            yield text
        self._task = None
        await task  # its error, if any, is the caller's

    # --- what a run asks of its call --------------------------------------------------

    def _restored(self) -> CallRun | None:
        view = self.conversation.run
        if view is None or view["status"] in TERMINAL or view["name"] not in self.flows:
            return None
        return CallRun(self.flows[view["name"]], view["id"], self.conversation, self.host)

    def _context(self, ctx: dict[str, Any]) -> dict[str, Any]:
        ctx["spoken"] = spoken_slots(ctx["slots"], self.today(), self.services)
        ctx["caller"] = self.caller
        ctx["config"] = {}
        return ctx

    def _remember(self, kind: str, text: str, data: Mapping[str, Any]) -> None:
        self.router.remember(kind, text, dict(data))

    def _observe(self, type: str, data: Mapping[str, Any]) -> None:
        if type == "step.failed":
            self.failed_steps += 1
        elif type == "step.completed":
            output = data.get("output")
            alerts = output.get("alerts") if isinstance(output, Mapping) else None
            for alert in alerts if isinstance(alerts, list) else []:
                self.conversation.emit("ops.alert", dict(alert))
