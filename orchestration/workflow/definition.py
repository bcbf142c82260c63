"""Workflow definitions: pydantic models checked as a whole when they are built.

A workflow is a state machine of the six kinds in ``state_kinds`` (task, parallel, wait,
choice, say, end). Back-office workflows and the voice agents' conversations are both
written this way; a conversation adds ``intents`` (the caller's intents routed to it) and
``slots`` (cleared when it starts).

Whether built in Python or loaded from YAML, a definition with an unknown target, an
unreachable or trap state, a task without a tool, a wait without a way out, a bad guard,
template or text piece, or a bad cron expression is rejected here, before anything runs
(``problems()`` lists each with its path). ``loader.check_tools`` adds the checks that
need a tool registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from croniter import croniter
from pydantic import Field, model_validator

from orchestration.expr import ExpressionError, check_template, parse, text_pieces
from orchestration.workflow.graph import graph_problems
from orchestration.workflow.state_kinds import (
    KINDS,
    AnyState,
    ChoiceState,
    Duration,
    EndState,
    ParallelState,
    Remember,
    RetrySpec,
    Rule,
    SayState,
    SlaLevel,
    State,
    TaskState,
    Template,
    TimerSpec,
    ToolCall,
    Transition,
    WaitState,
    _Model,
    edges,
    infer_kind,
)

__all__ = [
    "KINDS", "AnyState", "ChoiceState", "Duration", "EndState", "InputField", "ParallelState",
    "Remember", "RetrySpec", "Rule", "SayState", "Schedule", "SlaLevel", "State", "TaskState",
    "Template", "TimerSpec", "ToolCall", "Transition", "WaitState", "WorkflowDef", "edges",
    "problems",
]


class InputField(_Model):
    type: Literal["string", "integer", "number", "boolean", "list", "object"] = "string"
    required: bool = True
    default: Any = None
    description: str = ""


class Schedule(_Model):
    cron: str
    input: dict[str, Any] = Field(default_factory=dict)


class WorkflowDef(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    version: int = 1
    start: str
    states: dict[str, State]
    input: dict[str, InputField] = Field(default_factory=dict)
    permissions: list[str] = Field(default_factory=list)
    saga: bool = False  # on failure, compensate every done step in reverse order
    schedule: Schedule | None = None
    intents: list[str] = Field(default_factory=list)  # a conversation: intents routed to it
    slots: list[str] = Field(default_factory=list)  # a conversation: cleared when it starts

    @model_validator(mode="before")
    @classmethod
    def _infer_kinds(cls, data: Any) -> Any:
        # YAML authors may leave ``kind`` out when the keys make it obvious
        if isinstance(data, dict) and isinstance(data.get("states"), dict):
            states = {}
            for name, body in data["states"].items():
                if isinstance(body, dict) and "kind" not in body:
                    body = {"kind": infer_kind(body), **body}
                states[name] = body
            data = {**data, "states": states}
        return data

    @model_validator(mode="after")
    def _check(self) -> WorkflowDef:
        found = problems(self)
        if found:
            raise ValueError("\n".join(f"{path}: {msg}" for path, msg in found))
        return self

    @property
    def conversational(self) -> bool:
        """Does it talk with a caller (say, turns, slots, memory)? Then it runs bound to a
        call (``call_run.CallRun``)."""
        return bool(self.intents) or any(_talks(st) for st in self.states.values())


def _talks(st: AnyState) -> bool:
    if isinstance(st, SayState):
        return True
    if isinstance(st, WaitState):
        return bool(st.say or st.slot or st.else_ or any(t.on_turn for t in st.on))
    return isinstance(st, EndState) and bool(st.say or st.remember or st.status == "escalated")


# --- the checks --------------------------------------------------------------------------

_SET_NAME = re.compile(r"(?:slots\.)?[a-z_][a-z0-9_]*")


def _expressions(st: AnyState) -> Iterator[tuple[str, str, Any]]:
    """(path, kind, text) of every expression in a state: kind is ``guard`` (one
    expression), ``template`` (``$`` values in a mapping) or ``text`` ({pieces})."""
    for key, expr in st.set.items():
        yield f"set.{key}", "guard", expr
    if isinstance(st, TaskState):
        yield "input", "template", st.input
        if st.compensate:
            yield "compensate.input", "template", st.compensate.input
    elif isinstance(st, ParallelState):
        for b, call in st.branches.items():
            yield f"branches.{b}.input", "template", call.input
        if st.for_each:
            yield "for_each", "guard", st.for_each
        if st.each:
            yield "each.input", "template", st.each.input
    elif isinstance(st, WaitState):
        yield "say", "text", st.say
        for i, t in enumerate(st.on):
            if t.guard is not None:
                yield f"on[{i}].guard", "guard", t.guard
        for i, s in enumerate(st.sla):
            yield f"sla[{i}].escalate.input", "template", s.escalate.input
    elif isinstance(st, ChoiceState):
        for i, r in enumerate(st.rules):
            yield f"rules[{i}].guard", "guard", r.guard
    elif isinstance(st, SayState):
        yield "say", "text", st.say
    else:
        yield "output", "template", st.output
        yield "say", "text", st.say
        if st.remember is not None:
            yield "remember.text", "text", st.remember.text
            yield "remember.data", "template", st.remember.data


def _expr_problems(wf: WorkflowDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, st in wf.states.items():
        for path, kind, value in _expressions(st):
            try:
                if kind == "guard":
                    parse(value)
                elif kind == "template":
                    check_template(value)
                else:
                    for piece in text_pieces(value):
                        parse(piece)
            except ExpressionError as exc:
                found.append((f"states.{name}.{path}", f"bad expression: {exc}"))
    return found


def _task_problems(wf: WorkflowDef, base: str, st: TaskState) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not st.tools:
        found.append((f"{base}.tool", "a task needs a tool (or a chain of tools)"))
    if not st.next:
        found.append((f"{base}.next", "a task needs a next state"))
    if st.on_error == "rollback" and not any(
        isinstance(s, TaskState) and s.checkpoint for s in wf.states.values()
    ):
        found.append((f"{base}.on_error", "rollback needs a task with checkpoint: true"))
    return found


def _parallel_problems(base: str, st: ParallelState) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not st.branches and not (st.for_each and st.each):
        found.append((f"{base}.branches", "a parallel state needs branches, or for_each with "
                      "each"))
    if not st.next:
        found.append((f"{base}.next", "a parallel state needs a next state"))
    if st.policy == "quorum" and st.quorum is None:
        found.append((f"{base}.quorum", "policy quorum needs a quorum count"))
    if st.quorum is not None and st.branches and st.quorum > len(st.branches):
        found.append((f"{base}.quorum", f"quorum {st.quorum} is more than the "
                      f"{len(st.branches)} branches"))
    return found


def _wait_problems(base: str, st: WaitState) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if st.slot and not st.next:
        found.append((f"{base}.next", "a wait with a slot needs next: where to go once the "
                      "slot is known"))
    if st.next and not st.slot:
        found.append((f"{base}.next", "next on a wait needs a slot to wait for"))
    for i, t in enumerate(st.on):
        if t.signal is not None and (t.intent is not None or t.changed):
            found.append((f"{base}.on[{i}]", "a transition matches a signal or a caller's "
                          "turn (intent, changed), not both"))
        elif t.signal is None and t.intent is None and not t.changed and t.guard is None:
            found.append((f"{base}.on[{i}]", "a transition needs a signal, an intent, changed "
                          "slots or a guard (else: for any other turn)"))
    if not (st.on or st.timers or any(s.target for s in st.sla) or st.else_ or st.slot):
        found.append((base, "a wait state needs a transition or a timer"))
    return found


def _state_problems(wf: WorkflowDef, name: str, st: AnyState) -> list[tuple[str, str]]:
    base = f"states.{name}"
    found = [(f"{base}.{path}", f"unknown target state {target!r}")
             for path, target, _ in edges(st) if target not in wf.states]
    found += [(f"{base}.set.{key}", "set a variable name or slots.<name>")
              for key in st.set if not _SET_NAME.fullmatch(key)]
    if isinstance(st, TaskState):
        found += _task_problems(wf, base, st)
    elif isinstance(st, ParallelState):
        found += _parallel_problems(base, st)
    elif isinstance(st, WaitState):
        found += _wait_problems(base, st)
    elif isinstance(st, ChoiceState) and not st.default:
        found.append((f"{base}.default", "a choice needs a default, so no input can leave it "
                      "stuck"))
    return found


def problems(wf: WorkflowDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if wf.start not in wf.states:
        found.append(("start", f"unknown state {wf.start!r}"))
    for name, st in wf.states.items():
        found += _state_problems(wf, name, st)
    if wf.schedule is not None and not croniter.is_valid(wf.schedule.cron):
        found.append(("schedule.cron", f"not a cron expression: {wf.schedule.cron!r}"))
    found += _expr_problems(wf)
    if found:
        return found
    # reachability: from start forwards, and to an end state backwards
    succ = {n: [t for _, t, _ in edges(s)] for n, s in wf.states.items()}
    finals = [n for n, s in wf.states.items() if isinstance(s, EndState)]
    return graph_problems(wf.start, succ, finals)
