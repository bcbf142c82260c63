"""Running one flow for one call: states, transitions, tools and memory.

The supervisor owns the conversation; a ``FlowRun`` is a sub-agent's task in progress.
``match(turn)`` says whether a caller turn answers the state the flow waits in (and
where it leads), without side effects, so the supervisor can hand the turn elsewhere if
it does not. ``goto(target)`` moves there and runs states until the flow waits again or
ends, yielding the text to speak as it goes.

Tools run through the orchestration core's ``ToolRunner`` (per-tool circuit breakers
shared by all calls, retry with backoff, time boxes, ordered fallbacks). Two families
are bound to the call instead of the registry: ``memory.remember`` and
``memory.recall`` go through the call's ``MemoryRouter``.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from memory.router import MemoryRouter
from memory.short_term import CallMemory
from orchestration.breaker import BreakerOpen
from orchestration.bulkhead import BulkheadFull
from orchestration.expr import evaluate, truthy
from orchestration.flow import (
    FINAL,
    AskState,
    ChoiceState,
    DoneState,
    EscalateState,
    FlowDef,
    ListenState,
    SayState,
    ToolState,
    parse_expr,
    template_pieces,
)
from orchestration.nlu_slots import speak_date, speak_time
from orchestration.runner import ToolRunner, describe
from orchestration.tools import ToolError

# the data scope each memory tool needs (declared in a flow's permissions)
MEMORY_SCOPES = {"memory.recall": "memory.read", "memory.remember": "memory.write"}

Emit = Callable[[str, Mapping[str, Any]], None]
MAX_STEPS = 50  # states run for one turn; a loop without a wait is a configuration bug


@dataclass(frozen=True, slots=True)
class TurnInfo:
    intent: str
    text: str = ""
    changed: tuple[str, ...] = ()
    confidence: float = 1.0

    def as_ctx(self) -> dict[str, Any]:
        return {"intent": self.intent, "text": self.text, "changed": list(self.changed)}


@dataclass
class CallContext:
    """What every flow of one call shares."""

    memory: CallMemory
    router: MemoryRouter
    runner: ToolRunner
    emit: Emit
    caller: dict[str, Any] = field(default_factory=dict)  # id, name, returning
    config: dict[str, Any] = field(default_factory=dict)
    today: Callable[[], date] = date.today
    services: Mapping[str, str] = field(default_factory=dict)  # service -> spoken name


def render(text: str, ctx: Mapping[str, Any]) -> str:
    """Fill ``{expression}`` pieces; a missing value renders as nothing."""
    out = text
    for piece in template_pieces(text):
        value = evaluate(parse_expr(piece), ctx)
        out = out.replace("{" + piece + "}", "" if value is None else str(value), 1)
    out = re.sub(r"([.?!])\.", r"\1", " ".join(out.split()))  # "...budget?." -> "...budget?"
    return out[:1].upper() + out[1:]  # "tomorrow at 10 AM, ..." starts a sentence


def _resolve(template: Any, ctx: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        if template.startswith("$$"):
            return template[1:]
        if template.startswith("$"):
            return evaluate(parse_expr(template[1:]), ctx)
        return template
    if isinstance(template, Mapping):
        return {k: _resolve(v, ctx) for k, v in template.items()}
    if isinstance(template, list):
        return [_resolve(v, ctx) for v in template]
    return template


class FlowRun:
    def __init__(self, flow: FlowDef, call: CallContext) -> None:
        self.flow = flow
        self.call = call
        self.state: str | None = None
        self.steps: dict[str, Any] = {}
        self.vars: dict[str, Any] = {}
        self.outcome: str | None = None  # None while running; "done" | "escalate"
        self.escalate_reason = ""
        self.failed_tools = 0
        self.turn = TurnInfo("")

    def copy(self) -> FlowRun:
        """The run's progress as an independent copy (the flow and the call are shared):
        the supervisor keeps one from before each turn, to undo a turn that is superseded."""
        run = FlowRun(self.flow, self.call)
        run.state, run.outcome, run.turn = self.state, self.outcome, self.turn
        run.escalate_reason, run.failed_tools = self.escalate_reason, self.failed_tools
        run.steps, run.vars = copy.deepcopy(self.steps), copy.deepcopy(self.vars)
        return run

    # --- context ----------------------------------------------------------------------

    def ctx(self) -> dict[str, Any]:
        slots = self.call.memory.slots
        today = self.call.today()
        spoken: dict[str, Any] = {}
        if isinstance(slots.get("date"), str):
            spoken["date"] = speak_date(date.fromisoformat(slots["date"]), today)
        if isinstance(slots.get("time"), str):
            spoken["time"] = speak_time(slots["time"])
        if isinstance(slots.get("service"), str):
            spoken["service"] = self.call.services.get(slots["service"], slots["service"])
        return {"slots": dict(slots), "spoken": spoken, "steps": self.steps, "vars": self.vars,
                "turn": self.turn.as_ctx(), "caller": self.call.caller,
                "config": self.call.config}

    @property
    def waiting(self) -> bool:
        return self.outcome is None and self.state is not None

    def expected_intents(self) -> list[str]:
        st = self.flow.states.get(self.state or "")
        if isinstance(st, ListenState):
            return [i for o in st.on for i in o.intents]
        return []

    def prompt(self) -> str:
        st = self.flow.states.get(self.state or "")
        if isinstance(st, AskState | ListenState) and st.say:
            return render(st.say, self.ctx())
        return ""

    # --- turns ------------------------------------------------------------------------

    def match(self, turn: TurnInfo) -> str | None:
        """The target a turn leads to from the waiting state, or None if it does not fit."""
        self.turn = turn
        st = self.flow.states.get(self.state or "")
        if isinstance(st, AskState):
            return st.next if self.call.memory.slots.get(st.slot) is not None else None
        if isinstance(st, ListenState):
            ctx = self.ctx()
            for on in st.on:
                if on.intents and turn.intent not in on.intents:
                    continue
                if on.changed and not set(on.changed) & set(turn.changed):
                    continue
                if on.guard and not truthy(parse_expr(on.guard), ctx):
                    continue
                return on.target
            return st.else_
        return None

    async def start(self, turn: TurnInfo) -> AsyncIterator[str]:
        self.turn = turn
        async for text in self.goto(self.flow.start, via="start"):
            yield text

    async def goto(self, target: str, via: str = "turn") -> AsyncIterator[str]:
        for _ in range(MAX_STEPS):
            previous, self.state = self.state, target
            self.call.emit("workflow.transition", {"agent": self.flow.name, "from": previous,
                                                   "to": target, "via": via})
            st = self.flow.states[target]
            ctx = self.ctx()
            for name, expr in st.set.items():
                value = evaluate(parse_expr(expr), ctx)
                if name.startswith("slots."):
                    self.call.memory.slots[name.removeprefix("slots.")] = value
                else:
                    self.vars[name] = value
            if st.set:
                ctx = self.ctx()
            if isinstance(st, SayState):
                yield render(st.say, ctx)
                target, via = st.next, "next"
            elif isinstance(st, AskState):
                if self.call.memory.slots.get(st.slot) is not None:
                    target, via = st.next, f"slot {st.slot} known"
                    continue
                yield render(st.say, ctx)
                return
            elif isinstance(st, ListenState):
                if st.say:
                    yield render(st.say, ctx)
                return
            elif isinstance(st, ChoiceState):
                target = next((r.target for r in st.rules if truthy(parse_expr(r.guard), ctx)),
                              st.default)
                via = "choice"
            elif isinstance(st, ToolState):
                ok = await self._tool(target, st, ctx)
                target, via = (st.next, "ok") if ok else (st.on_error or st.next, "error")
            elif isinstance(st, DoneState):
                if st.remember is not None:
                    text = render(st.remember.text, ctx)
                    self.call.router.remember(st.remember.kind, text,
                                              _resolve(st.remember.data, ctx))
                if st.say:
                    yield render(st.say, ctx)
                self.outcome = "done"
                return
            elif isinstance(st, EscalateState):
                self.outcome, self.escalate_reason = "escalate", st.reason
                return
            if isinstance(st, FINAL):
                return
        raise RuntimeError(f"flow {self.flow.name}: more than {MAX_STEPS} states without a wait")

    # --- tools ------------------------------------------------------------------------

    async def _tool(self, state: str, st: ToolState, ctx: Mapping[str, Any]) -> bool:
        agent = self.flow.name
        raw = _resolve(st.input, ctx)
        if not isinstance(raw, Mapping):
            raw = {}
        started = time.perf_counter()
        self.call.emit("tool.called", {"agent": agent, "state": state, "tool": st.tool})
        scope = MEMORY_SCOPES.get(st.tool)
        if scope is not None and scope not in self.flow.permissions:
            # least privilege covers data too: memory is read or written only by agents
            # that declared the scope
            message = f"needs permissions not granted: ['{scope}']"
            self.call.emit("policy.denied", {"agent": agent, "tool": st.tool,
                                             "rule": "least_privilege", "message": message,
                                             "approval": False})
            self.failed_tools += 1
            self.steps[state] = {"ok": False, "error": f"PermissionDenied: {message}"}
            self.call.emit("tool.gave_up", {"agent": agent, "tool": st.tool, "error": message})
            return False
        if st.tool.startswith("memory."):
            self.steps[state] = self._memory_tool(st.tool, raw)
            self.call.emit("tool.succeeded", {"agent": agent, "tool": st.tool, "fallback": False,
                                              "ms": round((time.perf_counter() - started) * 1e3,
                                                          2)})
            return True

        def emit(type: str, data: Mapping[str, Any]) -> None:
            self.call.emit(type, {"agent": agent, **data})

        try:
            result = await self.call.runner.run(
                [st.tool], raw, emit=emit, fallbacks=st.fallbacks, retry_spec=st.retry,
                time_box=st.timeout, granted=self.flow.permissions,
                who={"agent": agent, "caller": self.call.caller})
        except (ToolError, BreakerOpen, BulkheadFull) as exc:
            self.failed_tools += 1
            self.steps[state] = {"ok": False, "error": describe(exc)}
            self.call.emit("tool.gave_up", {"agent": agent, "tool": st.tool,
                                            "error": describe(exc)})
            return False
        out = {"ok": True, **result.output}
        self.steps[state] = out
        self.call.emit("tool.succeeded", {
            "agent": agent, "tool": result.tool, "fallback": result.fallback,
            "ms": round((time.perf_counter() - started) * 1e3, 2)})
        for alert in out.get("alerts", []) if isinstance(out.get("alerts"), list) else []:
            self.call.emit("ops.alert", dict(alert))
        return True

    def _memory_tool(self, tool: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        router: MemoryRouter = self.call.router
        kind = str(raw.get("kind", "note"))
        if tool == "memory.remember":
            text = str(raw.get("text") or "").strip()
            item = router.remember(kind, text) if text else None
            return {"ok": item is not None, "id": item, "anonymous": not router.enabled,
                    "refused": item is None and bool(text) and router.enabled}
        items = router.recall(kind, int(raw.get("limit", 5)), raw.get("query") or None)
        texts = [i.text for i in items]
        return {"ok": True, "count": len(texts), "items": texts,
                "last": texts[0] if texts else "",
                "spoken": " ".join(f"{n}: {t.rstrip('.')}." for n, t in enumerate(texts, 1))}
