"""A conversation's state, event-sourced in its call's stream, and the runs bound to it.

A call's conversation (the agent in control, the run of its flow, the slots, failures,
the caller, the last thing said) is the fold of the events the call emits
(``views.fold_conversation``). ``Conversation`` emits each event on the bus with the
call's session id -- the gateway's ``BusLog`` writes it to ``call:<session>`` -- and folds
it into its live view at once, with the same function the log's view uses, so the state a
replay rebuilds is the state the live call had, and a call can be resumed from it.

A ``CallRun`` is one workflow run inside a conversation (``runs.RunHandle``): the engine
drives it like a back-office run, but its events (each naming the ``run`` and the
``agent``) go out through the conversation, and its view is the conversation's ``run``.
What the host (the supervisor) lends it is a ``CallHost``: the slots as they are said,
who the caller is, a listener for what to say, the caller's memory, a tool runner with
the call's own tools, and ``durable``: an awaited flush of the bus's log writer.

Two views of one event differ only where redaction masks it: the live fold sees what the
engine emitted, the log what the bus's redactor let through (a phone number in a note is
masked in the log; dates, times, ids and intents are kept).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.log.events import EventBus
from orchestration.log.store import View
from orchestration.log.views import fold_conversation, new_conversation
from orchestration.patterns import hold
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.runs import NO_TURN, Turn

# Awaited before a run's tool is called: returns once every event emitted so far is in the
# log. The gateway passes its BusLog's flush (run on a thread); None: nothing to wait for.
Durability = Callable[[], Awaitable[None]]
ContextHook = Callable[[dict[str, Any]], dict[str, Any]]


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    # what the log will hold: JSON values (tuples become lists), and no aliasing of the
    # emitter's own objects into the view
    copied: dict[str, Any] = json.loads(json.dumps(dict(data), default=str))
    return copied


class Conversation:
    """One call's conversation: every event it emits is on the bus and in its view."""

    def __init__(self, bus: EventBus, session: str, view: View | None = None) -> None:
        self.bus = bus
        self.session = session
        self.view: View = view if view is not None else new_conversation()
        # called with each event once it is folded (the host reacts to its runs' steps)
        self.observers: list[Callable[[str, Mapping[str, Any]], None]] = []

    def emit(self, type: str, data: Mapping[str, Any] | None = None) -> None:
        plain = _plain(data or {})
        event = self.bus.emit(self.session, type, plain)
        fold_conversation(self.view, type, plain, event.ts)
        for observer in self.observers:
            observer(type, plain)

    @property
    def run(self) -> View | None:
        """The view of the latest run (ended or not), None before the first."""
        run: View | None = self.view["run"]
        return run


def carried_on(stored: View | None) -> View | None:
    """The conversation a resumed call carries on with: a copy of the one in the call's
    stored view (``views.project``), nothing of which the new session can supersede."""
    if stored is None:
        return None
    conversation: View = copy.deepcopy(stored["conversation"])
    conversation["before"] = None
    return conversation


@dataclass
class CallHost:
    """What a call lends its runs."""

    durable: Durability | None = None
    context: ContextHook | None = None  # adds what expressions read beyond the run's own
    say: Callable[[str], None] | None = None
    remember: Callable[[str, str, Mapping[str, Any]], None] | None = None
    who: Callable[[], dict[str, Any]] | None = None  # the caller, for the policy rules
    runner: ToolRunner | None = None


# a run's step events, as the agents' observers (dashboard, traces, metrics, evaluation)
# have always seen tool calls from both agent backends
_OBSERVED = {"step.started": "tool.called", "step.completed": "tool.succeeded",
             "step.failed": "tool.gave_up"}


class CallRun:
    """A run of ``defn`` inside ``conversation``, named ``ident`` (unique in the call)."""

    def __init__(self, defn: WorkflowDef, ident: str, conversation: Conversation,
                 host: CallHost | None = None) -> None:
        self.defn = defn
        self.ident = ident
        self.conversation = conversation
        self.host = host or CallHost()
        self.turn: Turn = NO_TURN

    @property
    def view(self) -> View:
        run = self.conversation.run
        if run is None or run["id"] != self.ident:
            raise LookupError(f"run {self.ident!r} is not the conversation's run")
        return run

    @property
    def runner(self) -> ToolRunner | None:
        return self.host.runner

    @property
    def key(self) -> str:
        """Names this run in the whole log: ``<session>/<run>`` (idempotency keys start
        with it, so a step run again after a resume is recognised). A resumed call's runs
        keep the session the conversation began in."""
        origin = self.conversation.view.get("origin") or self.conversation.session
        return f"{origin}/{self.ident}"

    def emit(self, type: str, data: dict[str, Any]) -> None:
        data = {**data, "run": self.ident, "agent": self.defn.name}
        self.conversation.emit(type, data)
        seen = _OBSERVED.get(type)
        if seen is not None and "tool" in data:
            self.conversation.emit(seen, _observation(seen, data))

    def commit(self) -> None:
        """Nothing to do: each event is folded as it is emitted."""

    async def durable(self) -> None:
        if self.host.durable is not None:
            await self.host.durable()

    def context(self) -> dict[str, Any]:
        ctx = {**self.view["ctx"], "slots": dict(self.conversation.view["slots"]),
               "turn": self.turn.as_ctx(),
               "run": {"id": self.ident, "workflow": self.defn.name, "key": self.key}}
        return self.host.context(ctx) if self.host.context is not None else ctx

    def who(self) -> dict[str, Any]:
        return {"agent": self.defn.name, **(self.host.who() if self.host.who else {})}

    def say(self, text: str) -> None:
        if self.host.say is not None and text:
            self.host.say(text)

    def remember(self, kind: str, text: str, data: Mapping[str, Any]) -> None:
        keep = self.host.remember
        if keep is None:
            return
        early = hold.pending()
        if early is None:
            keep(kind, text, data)
            return
        # an early turn's note is kept once the turn is confirmed, never if it is dropped
        early.add_done_callback(
            lambda f: keep(kind, text, data) if not f.cancelled() and f.result() else None)


def _observation(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    base = {"agent": data["agent"], "run": data["run"], "tool": data["tool"]}
    if kind == "tool.called":
        return {**base, "state": data.get("step")}
    if kind == "tool.succeeded":
        return {**base, "fallback": bool(data.get("fallback")), "ms": data.get("ms")}
    return {**base, "error": data.get("error")}
