"""The front-desk supervisor: one per call, the ``Agent`` the voice session talks to.

Each caller turn goes through the NLU (``nlu.result``), fills the call's slots and the
memory router's decisions (a name given is written, ``memory.write``), then:

1. global intents first: a person (``escalate``), ``goodbye``, ``repeat``, ``help``,
   a name; while an agent waits for free text (a note being dictated) only a sure
   global intent interrupts it;
2. the active agent's waiting state, if the turn answers it and is not a clear request
   for another agent (a change of subject: the task is left aside, and the caller told
   so); a note being dictated is left only when the caller says so;
3. otherwise the agent that owns the turn's intent (``agent.handoff``);
4. otherwise a failure: "Sorry, I didn't get that" and the question again; at
   ``max_failures`` in a row (tool failures count too) the call is escalated.

Each agent's flow is a workflow definition the workflow engine runs bound to the call
(``flow_host.FlowHost``, ``call_run.CallRun``). The conversation -- the agent in control,
its run, the slots, failures in a row, the caller, whether the call is ending -- is the
fold of the call's own events (``call_run.Conversation``), so the event log holds it:
``CallInfo.resume_from`` starts a supervisor from the stored view of an earlier session
(``session.resumed``), which asks again what that call waited for.

A turn that supersedes the last one (the caller carried on after a pause, and the voice
session sends the whole sentence) first puts the state before it back
(``agent.input`` keeps it, ``agent.rollback`` restores it): its failure is not counted,
its flow step is undone, its goodbye did not happen. Effects outside the call (a booking
made, a note saved) stay. An early turn the voice session dropped (``UserTurn.confirmed``
False: the caller went on) is put back the same way at the next input, and acted on
nothing: its tools that act waited for it (``orchestration.patterns.hold``). A turn after
a goodbye or a transfer means the caller cut it before it happened: the call goes on
(``agent.reopened``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from memory.router import MemoryRouter
from memory.short_term import CallMemory
from orchestration.agents.agent import (
    AgentAction,
    AgentInput,
    CallInfo,
    Dtmf,
    HangUp,
    Say,
    Transfer,
    UserTurn,
)
from orchestration.agents.config import opens_with
from orchestration.agents.context import AgentContext
from orchestration.agents.flow_host import FlowHost
from orchestration.agents.greeting import greeting_text
from orchestration.agents.nlu.parser import UNKNOWN, NluResult
from orchestration.log.store import View
from orchestration.patterns import hold
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.call_run import CallRun, Conversation, carried_on
from orchestration.workflow.memory_tools import CallTools
from orchestration.workflow.runs import Turn

SLOT_NAMES = ("date", "time", "service", "note", "number")
SUPERVISOR = "supervisor"
_ENDED = {"goodbye": "goodbye", "escalation": "transfer"}


class Supervisor:
    name = SUPERVISOR
    early_turns = True  # a dropped early turn is put back; its tools that act wait for it
    # more attributes that are conversational state, kept and put back like the rest
    TURN_STATE: tuple[str, ...] = ()

    def __init__(self, call: CallInfo, context: AgentContext, resume: View | None = None) -> None:
        """``resume``: the conversation of an earlier session (its call view's
        ``conversation``, rebuilt from the log) to carry on from."""
        self.call = call
        self.sys = context  # the shared parts of the agent system this call uses
        self.config = context.config.supervisor
        self.memory = CallMemory()  # the recent turns ("repeat", the model's history)
        self.conversation = Conversation(context.bus, call.session_id, carried_on(resume))
        self.router = MemoryRouter(context.memory, call.caller, self.emit)
        runner = ToolRunner(CallTools(context.registry, self.router), context.clock,
                            context.runner.rng, context.breakers, policy=context.policy)
        self.host = FlowHost(context.engine, self.conversation, context.flows, runner=runner,
                             router=self.router, today=context.today,
                             services=context.spoken_services, durable=context.durable)
        # what the view cannot hold, kept from before the last input: the recent turns and
        # a subclass's own state
        self._kept: tuple[int | None, tuple[Any, ...], dict[str, Any]] | None = None
        self._early: asyncio.Future[bool] | None = None  # the last input's, if it came early
        self.resumed = resume is not None
        if resume is not None:
            self.emit("session.resumed", {"from": resume.get("id"), "agent": self._agent(),
                                          "state": self._state() or None,
                                          "conversation": self.conversation.view})

    def emit(self, type: str, data: Mapping[str, Any]) -> None:
        self.conversation.emit(type, data)

    @property
    def stt_prompt(self) -> str | None:
        """The words the recogniser should expect on this call (``stt_prompt`` in the
        agents' YAML); the voice session hands it to whisper with every utterance."""
        return self.sys.config.stt_prompt

    # --- the conversation's state, all of it folded from the call's events -------------

    @property
    def active(self) -> CallRun | None:
        """The run of the agent in control, if an agent (not the supervisor) has it."""
        run, view = self.host.run, self.conversation.view
        if run is None or view["agent"] != run.defn.name or view["run"] is None \
                or view["run"]["id"] != run.ident:
            return None
        return run

    @property
    def waiting(self) -> bool:
        """Does the agent in control wait for the caller's answer?"""
        return self.active is not None and self.host.waiting

    @property
    def failures(self) -> int:
        count: int = self.conversation.view["failures"]
        return count

    @failures.setter
    def failures(self, count: int) -> None:
        if count != self.failures:
            self.emit("agent.failures", {"count": count})

    @property
    def ended(self) -> str:
        """"goodbye" or "transfer" once we asked to end the call, else ""."""
        ended = self.conversation.view["ended"]
        return _ENDED.get(ended["by"], "transfer") if ended is not None else ""

    @property
    def caller(self) -> dict[str, Any]:
        """id, name, returning."""
        return self.host.caller

    def _agent(self) -> str:
        run = self.active
        return run.defn.name if run is not None else SUPERVISOR

    def _state(self) -> str:
        return str((self.conversation.run or {}).get("state") or "")

    # --- the Agent protocol -----------------------------------------------------------

    async def greeting(self) -> AsyncIterator[AgentAction]:
        if self.resumed:  # a call carried on from another session: no new greeting
            async for a in self.resume():
                yield a
            return
        started = time.perf_counter()
        recall = self.router.start()
        self.emit("caller.known", {"name": recall.name, "returning": recall.returning})
        text = greeting_text(self.config, recall, self.sys.today())
        self.memory.said(text)
        self.emit("agent.turn", {"intent": "greeting", "agent": SUPERVISOR,
                                 "ms": round((time.perf_counter() - started) * 1e3, 3)})
        yield Say(text)

    async def respond(self, item: AgentInput) -> AsyncIterator[AgentAction]:
        started = time.perf_counter()
        await self._begin(item)
        # this turn's tools that act wait until it is confirmed, if it came early
        hold.TURN_CONFIRMED.set(item.confirmed if isinstance(item, UserTurn) else None)
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
        self.emit("agent.turn", {"intent": result.intent, "agent": self._agent(),
                                 "ms": round((time.perf_counter() - started) * 1e3, 3)})

    async def resume(self) -> AsyncIterator[AgentAction]:
        """After the apology: finish a step in flight, ask again what the call waited for."""
        said = False
        if self.config.resumed:
            self.memory.said(self.config.resumed)
            yield Say(self.config.resumed)
        async for a in self._run(self.host.carry_on()):
            if isinstance(a, Say):
                said = True
                self.memory.said(a.text)
            yield a
        if not said:  # ask again what the call waited for, else what comes next
            prompt = (self.host.prompt() if self.waiting else "") or self.config.anything_else
            self.memory.said(prompt)
            yield Say(prompt)

    # --- undoing a superseded turn ---------------------------------------------------

    async def _begin(self, item: AgentInput) -> None:
        """Undo the turn ``item`` supersedes, reopen an ended call, keep the state."""
        await self.host.settle()  # the states of a cut reply finish first
        turn = item if isinstance(item, UserTurn) else None
        kept, early = self._kept, self._early
        index = turn.index if turn is not None else None
        if early is not None and early.done() and not early.result() and kept is not None:
            # the last turn came early and was dropped (the caller went on): it never was
            self.emit("agent.rollback", {"turn": index, "superseded": kept[0], "early": True})
            self._restore(kept)
        elif turn is not None and turn.supersedes is not None and kept is not None \
                and kept[0] == turn.supersedes:
            # the view puts back what it kept at ``agent.input``
            self.emit("agent.rollback", {"turn": turn.index, "superseded": turn.supersedes})
            self._restore(kept)
        if self.ended:
            # we said goodbye or handed over, yet the caller is still talking to us: they
            # cut it before it happened (a session closes once it does)
            self.emit("agent.reopened", {"after": self.ended})
            self.host.reload()
        self._early = turn.confirmed if turn is not None else None
        self.emit("agent.input", {"turn": index})
        self._kept = (index, tuple(self.memory.turns),
                      {name: copy.deepcopy(getattr(self, name)) for name in self.TURN_STATE})

    def _restore(self, kept: tuple[int | None, tuple[Any, ...], dict[str, Any]]) -> None:
        self.host.reload()
        self.memory.turns.clear()
        self.memory.turns.extend(kept[1])
        for name, value in kept[2].items():
            setattr(self, name, copy.deepcopy(value))

    # --- one turn ---------------------------------------------------------------------

    def _expected(self) -> list[str]:
        return self.host.expected_intents() if self.waiting else []

    def _free_text(self) -> bool:
        """Does the active state take any answer (``else``)? Then globals need to be sure."""
        return self.waiting and self.host.takes_any_turn()

    def _prompt(self) -> str:
        return self.host.prompt() if self.waiting else ""

    async def _turn(self, nlu: NluResult) -> AsyncIterator[AgentAction]:
        slots = {k: v for k, v in nlu.slots.items() if k in SLOT_NAMES}
        if "note" in slots and nlu.intent != "note_add":
            slots.pop("note")
        changed = self.host.fill(slots)
        turn = Turn(nlu.intent, nlu.text, tuple(changed))
        self.memory.heard(nlu.text, nlu.intent)
        sure = not self._free_text() or nlu.confidence >= self.config.interrupt_confidence
        name = nlu.slots.get("name")
        if nlu.intent == "tell_name" and isinstance(name, str) and sure:
            self.router.set_name(name)  # memory.write: the conversation knows the name
        if sure and nlu.intent in ("escalate", "goodbye", "repeat", "help", "tell_name"):
            async for a in self._global(nlu.intent):
                yield a
            return
        leaving = self._leaving(nlu) if self.waiting else ""
        run = self.active
        if run is not None and leaving == "drop":
            self.failures, aside = 0, self._aside()
            self.emit("agent.handoff", {"from": run.defn.name, "to": SUPERVISOR,
                                        "reason": "dropped", "left": self._state()})
            yield Say(f"{aside} {self.config.anything_else}")
            return
        target = self.host.match(turn) if self.waiting and not leaving else None
        if target is not None:
            self.failures = 0
            async for a in self._run(self.host.answer(turn, target)):
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

    async def _global(self, intent: str) -> AsyncIterator[AgentAction]:
        """The supervisor's own intents, whatever agent is active."""
        c = self.config
        if intent == "escalate":
            async for a in self._escalate("caller asked for a person"):
                yield a
            return
        if intent == "goodbye":
            self.emit("agent.goodbye", {"reason": "caller said goodbye"})
            yield Say(c.goodbye)
            yield HangUp("caller said goodbye")
            return
        if intent == "repeat":
            yield Say(self.memory.last_said() or c.help)
        else:
            text = c.help if intent == "help" else c.name_ack.format(
                name=self.caller.get("name") or "")
            prompt = self._prompt()
            yield Say(f"{text} {prompt}".strip() if prompt else text)
        self.failures = 0

    def _leaving(self, nlu: NluResult) -> str:
        """Does this turn leave the task that waits for an answer? "switch" to the agent
        its intent names, "drop" the task, or "" (it is for the task, or not understood)."""
        run = self.active
        assert run is not None
        c = self.config
        routed = self.sys.routes.get(nlu.intent)
        other = routed is not None and routed != run.defn.name \
            and nlu.intent not in self.host.expected_intents() \
            and nlu.confidence >= c.switch_confidence
        if not self._free_text():
            return "switch" if other else ""
        # a dictated note may say anything ("call the internet provider"): only the caller
        # saying so leaves it
        said = nlu.text.strip().lower()
        if opens_with(said, c.leave_phrases):
            return "switch" if other else "drop"
        sure = said.endswith("?") or opens_with(said, c.change_phrases) \
            or nlu.confidence >= c.free_text_switch_confidence
        return "switch" if other and sure else ""

    def _aside(self) -> str:
        """What the caller hears when the task the active run waits in is left."""
        lines = self.config.set_aside
        name = self._agent()
        return lines.get(f"{name}.{self._state()}") or lines.get(name) \
            or lines.get("default", "")

    async def _handoff(self, flow_name: str, nlu: NluResult,
                       turn: Turn) -> AsyncIterator[AgentAction]:
        flow = self.sys.flows[flow_name]
        came_from = self._agent() if self.waiting else SUPERVISOR
        event: dict[str, Any] = {"from": came_from, "to": flow_name, "intent": nlu.intent}
        aside = ""
        if came_from not in (SUPERVISOR, flow_name):
            event["left"] = self._state()
            aside = self._aside()
        self.emit("agent.handoff", event)
        self.host.clear(flow.slots)
        changed = self.host.fill({k: v for k, v in nlu.slots.items() if k in flow.slots})
        first = True
        start = self.host.start(flow_name, Turn(turn.intent, turn.text, tuple(changed)))
        async for a in self._run(start):
            if first and aside and isinstance(a, Say):
                a = Say(f"{aside} {a.text}")
            first = False
            yield a

    async def _run(self, texts: AsyncIterator[str]) -> AsyncIterator[AgentAction]:
        failed_before = self.host.failed_steps
        async for text in texts:
            if text:
                yield Say(text)
        if self.active is None:
            return
        self.failures += self.host.failed_steps - failed_before
        outcome = self.host.outcome
        if outcome == "escalate":
            async for a in self._escalate(self.host.reason or "agent"):
                yield a
        elif self.failures >= self.config.max_failures:
            async for a in self._escalate("repeated failure"):
                yield a
        elif outcome is not None:
            self.emit("agent.handoff", {"from": self._agent(), "to": SUPERVISOR,
                                        "reason": "done" if outcome == "done" else outcome})
            yield Say(self.config.anything_else)

    async def _failure(self, intent: str) -> AsyncIterator[AgentAction]:
        self.failures += 1
        self.emit("agent.failure", {"count": self.failures, "intent": intent,
                                    "agent": self._agent()})
        if self.failures >= self.config.max_failures:
            async for a in self._escalate("repeated failure"):
                yield a
            return
        yield Say(f"{self.config.not_understood} {self._prompt() or self.config.help}")

    async def _escalate(self, reason: str) -> AsyncIterator[AgentAction]:
        target = self.config.transfer_target
        self.emit("call.escalated", {
            "reason": reason, "target": target, "failures": self.failures,
            "agent": self._agent()})
        yield Say(self.config.escalation)
        yield Transfer(target, reason=reason)

