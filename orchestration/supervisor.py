"""The front-desk supervisor: one per call, the ``Agent`` the voice session talks to.

Each caller turn goes through the NLU (``nlu.result``), fills the call's slots and the
memory router's decisions (a name given is written, ``memory.write``), then:

1. global intents first: a person (``escalate``), ``goodbye``, ``repeat``, ``help``,
   a name; while a sub-agent waits for free text (a note being dictated) only a sure
   global intent interrupts it;
2. the active sub-agent's waiting state, if the turn answers it and is not a clear
   request for another agent (a change of subject: the task is left aside, and the caller
   told so); a note being dictated is left only when the caller says so;
3. otherwise the sub-agent that owns the turn's intent (``agent.handoff``), which also
   ends a task the caller walked away from;
4. otherwise a failure: "Sorry, I didn't get that" and the question again; at
   ``max_failures`` in a row (tool failures count too) the call is escalated.

A finished task hands control back (``agent.handoff`` to ``supervisor``) with "anything
else?". Escalation, on request, on repeated failure or on DTMF 0, is a
``call.escalated`` event, a spoken handoff and a ``Transfer`` to the configured target.
Each turn ends with ``agent.turn {intent, agent, ms}``: the orchestration time.

The conversation's state is kept from before each turn. A turn that supersedes the last
one (the caller carried on after a pause, the voice session cut our answer and sends the
whole sentence) first puts that state back (``agent.rollback``), so the cut half is not
answered twice: its failure is not counted, its flow step is undone, its goodbye did not
happen. Effects outside the call (a booking made, a note saved) stay. A turn that arrives
after a goodbye or a transfer means the caller cut it before it happened: the call goes on
(``agent.reopened``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from memory.router import MemoryRouter
from memory.short_term import CallMemory, Turn
from orchestration.agent import (
    AgentAction,
    AgentInput,
    CallInfo,
    Dtmf,
    HangUp,
    Say,
    Transfer,
    UserTurn,
)
from orchestration.flow_run import CallContext, FlowRun, TurnInfo
from orchestration.nlu import UNKNOWN, NluResult
from orchestration.nlu_slots import speak_date, speak_time

if TYPE_CHECKING:
    from orchestration.agents_system import AgentSystem

SLOT_NAMES = ("date", "time", "service", "note", "number")
SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class _Before:
    """The call's conversational state just before one input (``turn``: its index, None
    for a key press, which nothing supersedes)."""

    turn: int | None
    active: FlowRun | None
    failures: int
    ended: str
    slots: dict[str, Any]
    history: tuple[Turn, ...]
    caller: dict[str, Any]
    extra: dict[str, Any]  # a subclass's own state (``Supervisor.TURN_STATE``)


class Supervisor:
    name = SUPERVISOR
    # more attributes that are conversational state, kept and put back like the rest
    TURN_STATE: tuple[str, ...] = ()

    def __init__(self, call: CallInfo, system: AgentSystem) -> None:
        self.call = call
        self.sys = system
        self.config = system.config.supervisor
        self.memory = CallMemory()
        self.router = MemoryRouter(system.memory, call.caller, self.emit)
        self.ctx = CallContext(
            memory=self.memory, router=self.router, runner=system.runner, emit=self.emit,
            caller={"id": self.router.key, "name": None, "returning": False},
            config={}, today=system.today, services=system.spoken_services)
        self.active: FlowRun | None = None
        self.failures = 0
        self.ended = ""  # "goodbye" or "transfer" once we asked to end the call
        self._before: _Before | None = None

    def emit(self, type: str, data: Mapping[str, Any]) -> None:
        self.sys.bus.emit(self.call.session_id, type, data)

    @property
    def stt_prompt(self) -> str | None:
        """The words the recogniser should expect on this call (``stt_prompt`` in the
        agents' YAML); the voice session hands it to whisper with every utterance."""
        return self.sys.config.stt_prompt

    # --- the Agent protocol -----------------------------------------------------------

    async def greeting(self) -> AsyncIterator[AgentAction]:
        started = time.perf_counter()
        recall = self.router.start()
        self.ctx.caller.update(name=recall.name, returning=recall.returning)
        c = self.config
        if recall.returning and recall.name:
            text = c.greeting_returning.format(name=recall.name)
        elif recall.returning:
            text = c.greeting_returning_anonymous
        else:
            text = c.greeting
        booking = recall.last_booking
        when = booking.data.get("date") if booking is not None else None
        if booking is not None and isinstance(when, str) and when >= self.sys.today().isoformat():
            spoken = (f"{speak_date(date.fromisoformat(when), self.sys.today())} at "
                      f"{speak_time(str(booking.data.get('time', '09:00')))}")
            text = f"{text} {c.greeting_booking.format(booking=spoken)}" \
                if "{booking}" in c.greeting_booking else text
        self.memory.said(text)
        self.emit("agent.turn", {"intent": "greeting", "agent": SUPERVISOR,
                                 "ms": round((time.perf_counter() - started) * 1e3, 3)})
        yield Say(text)

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        started = time.perf_counter()
        self._begin(item)
        if isinstance(item, Dtmf):
            if item.digit == "0":
                actions = self._escalate("dtmf 0")
                result = NluResult("", "", "escalate", 1.0)
            else:
                intent = self.config.dtmf_menu.get(item.digit)
                result = NluResult(f"dtmf {item.digit}", "", intent or UNKNOWN, 1.0)
                actions = self._turn(result)
        else:
            result = await self.sys.understand(item.text, self._expected())
            self.emit("nlu.result", result.to_event())
            actions = self._turn(result)
        async for action in actions:
            if isinstance(action, Say):
                self.memory.said(action.text)
            yield action
        self.emit("agent.turn", {
            "intent": result.intent, "agent": self.active.flow.name if self.active else SUPERVISOR,
            "ms": round((time.perf_counter() - started) * 1e3, 3)})

    # --- undoing a superseded turn ---------------------------------------------------

    def _begin(self, item: AgentInput) -> None:
        """Undo the turn ``item`` supersedes, reopen an ended call, keep the state."""
        before = self._before
        turn = item if isinstance(item, UserTurn) else None
        if turn is not None and turn.supersedes is not None and before is not None \
                and before.turn == turn.supersedes:
            self._restore(before)
            self.emit("agent.rollback", {"turn": turn.index, "superseded": turn.supersedes})
        if self.ended:
            # we said goodbye or handed over, yet the caller is still talking to us: they
            # cut it before it happened (a session closes once it does)
            self.emit("agent.reopened", {"after": self.ended})
            self.ended = ""
            self.active = None  # the question it left open is not what they last heard
        self._before = _Before(
            turn.index if turn is not None else None,
            self.active.copy() if self.active is not None else None,
            self.failures, self.ended, copy.deepcopy(self.memory.slots),
            tuple(self.memory.turns), dict(self.ctx.caller),
            {name: copy.deepcopy(getattr(self, name)) for name in self.TURN_STATE})

    def _restore(self, before: _Before) -> None:
        self.active = before.active.copy() if before.active is not None else None
        self.failures, self.ended = before.failures, before.ended
        self.memory.slots.clear()
        self.memory.slots.update(copy.deepcopy(before.slots))
        self.memory.turns.clear()
        self.memory.turns.extend(before.history)
        self.ctx.caller.clear()
        self.ctx.caller.update(before.caller)
        for name, value in before.extra.items():
            setattr(self, name, copy.deepcopy(value))

    # --- one turn ---------------------------------------------------------------------

    def _expected(self) -> list[str]:
        return self.active.expected_intents() if self.active and self.active.waiting else []

    def _free_text(self) -> bool:
        """Does the active state take any answer (``else``)? Then globals need to be sure."""
        if self.active is None or not self.active.waiting:
            return False
        st = self.active.flow.states.get(self.active.state or "")
        return getattr(st, "else_", None) is not None

    async def _turn(self, nlu: NluResult) -> AsyncIterator[AgentAction]:
        slots = {k: v for k, v in nlu.slots.items() if k in SLOT_NAMES}
        if "note" in slots and nlu.intent != "note_add":
            slots.pop("note")
        changed = self.memory.fill(slots)
        turn = TurnInfo(nlu.intent, nlu.text, tuple(changed), nlu.confidence)
        self.memory.heard(nlu.text, nlu.intent)
        sure = not self._free_text() or nlu.confidence >= self.config.interrupt_confidence
        name = nlu.slots.get("name")
        if nlu.intent == "tell_name" and isinstance(name, str) and sure \
                and self.router.set_name(name):
            self.ctx.caller["name"] = name
        c = self.config
        if nlu.intent == "escalate" and sure:
            async for a in self._escalate("caller asked for a person"):
                yield a
            return
        if nlu.intent == "goodbye" and sure:
            self.ended = "goodbye"
            yield Say(c.goodbye)
            yield HangUp("caller said goodbye")
            return
        if nlu.intent in ("repeat", "help", "tell_name") and sure:
            if nlu.intent == "repeat":
                yield Say(self.memory.last_said() or c.help)
            else:
                text = c.help if nlu.intent == "help" else c.name_ack.format(
                    name=self.ctx.caller.get("name") or "")
                prompt = self.active.prompt() if self.active and self.active.waiting else ""
                yield Say(f"{text} {prompt}".strip() if prompt else text)
            self.failures = 0
            return
        run = self.active
        leaving = self._leaving(nlu) if run is not None and run.waiting else ""
        if run is not None and leaving == "drop":
            self.failures, self.active = 0, None
            self.emit("agent.handoff", {"from": run.flow.name, "to": SUPERVISOR,
                                        "reason": "dropped", "left": run.state})
            yield Say(f"{self._aside(run)} {c.anything_else}")
            return
        if run is not None and run.waiting and not leaving:
            target = run.match(turn)
            if target is not None:
                self.failures = 0
                async for a in self._run(run.goto(target)):
                    yield a
                return
        flow_name = self.sys.routes.get(nlu.intent)
        if flow_name is not None:
            self.failures = 0
            async for a in self._handoff(flow_name, nlu, turn):
                yield a
            return
        async for a in self._failure(nlu.intent):
            yield a

    def _leaving(self, nlu: NluResult) -> str:
        """Does this turn leave the task that waits for an answer? "switch" to the agent
        its intent names, "drop" the task, or "" (it is for the task, or not understood)."""
        run = self.active
        assert run is not None
        c = self.config
        routed = self.sys.routes.get(nlu.intent)
        other = routed is not None and routed != run.flow.name \
            and nlu.intent not in run.expected_intents() and nlu.confidence >= c.switch_confidence
        if not self._free_text():
            return "switch" if other else ""
        # a dictated note may say anything ("call the internet provider"): only the caller
        # saying so leaves it
        said = nlu.text.strip().lower()
        if any(said.startswith(p) and not said[len(p):len(p) + 1].isalnum()
               for p in c.leave_phrases):
            return "switch" if other else "drop"
        asks = said.endswith("?")
        return "switch" if other and (asks or nlu.confidence >= c.free_text_switch_confidence) \
            else ""

    def _aside(self, run: FlowRun) -> str:
        """What the caller hears when the task ``run`` waits in is left."""
        lines = self.config.set_aside
        return lines.get(f"{run.flow.name}.{run.state}") or lines.get(run.flow.name) \
            or lines.get("default", "")

    async def _handoff(self, flow_name: str, nlu: NluResult,
                       turn: TurnInfo) -> AsyncIterator[AgentAction]:
        flow = self.sys.flows[flow_name]
        left = self.active if self.active and self.active.waiting else None
        came_from = left.flow.name if left is not None else SUPERVISOR
        event = {"from": came_from, "to": flow_name, "intent": nlu.intent}
        aside = ""
        if left is not None and left.flow.name != flow_name:
            event["left"] = left.state or ""
            aside = self._aside(left)
        self.emit("agent.handoff", event)
        for slot in flow.slots:
            self.memory.slots.pop(slot, None)
        refill = {k: v for k, v in nlu.slots.items() if k in flow.slots}
        changed = self.memory.fill(refill)
        run = FlowRun(flow, self.ctx)
        self.active = run
        start_turn = TurnInfo(turn.intent, turn.text, tuple(changed), turn.confidence)
        first = True
        async for a in self._run(run.start(start_turn)):
            if first and aside and isinstance(a, Say):
                a = Say(f"{aside} {a.text}")
            first = False
            yield a

    async def _run(self, texts: AsyncIterator[str]) -> AsyncIterator[AgentAction]:
        run = self.active
        assert run is not None
        failed_before = run.failed_tools
        async for text in texts:
            if text:
                yield Say(text)
        self.failures += run.failed_tools - failed_before
        if run.outcome == "escalate":
            async for a in self._escalate(run.escalate_reason or "agent"):
                yield a
        elif self.failures >= self.config.max_failures:
            async for a in self._escalate("repeated failure"):
                yield a
        elif run.outcome == "done":
            self.emit("agent.handoff", {"from": run.flow.name, "to": SUPERVISOR,
                                        "reason": "done"})
            self.active = None
            yield Say(self.config.anything_else)

    async def _failure(self, intent: str) -> AsyncIterator[AgentAction]:
        self.failures += 1
        self.emit("agent.failure", {"count": self.failures, "intent": intent,
                                    "agent": self.active.flow.name if self.active else SUPERVISOR})
        if self.failures >= self.config.max_failures:
            async for a in self._escalate("repeated failure"):
                yield a
            return
        prompt = self.active.prompt() if self.active and self.active.waiting else ""
        yield Say(f"{self.config.not_understood} {prompt or self.config.help}")

    async def _escalate(self, reason: str) -> AsyncIterator[AgentAction]:
        self.ended = "transfer"
        target = self.config.transfer_target
        self.emit("call.escalated", {
            "reason": reason, "target": target, "failures": self.failures,
            "agent": self.active.flow.name if self.active else SUPERVISOR})
        yield Say(self.config.escalation)
        yield Transfer(target, reason=reason)

