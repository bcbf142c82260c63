"""Workflow definitions: pydantic models checked as a whole when they are built.

A workflow is a state machine. Its states are of five kinds:

- ``task``: call a tool (or a ``chain`` of tools, each fed the previous output), with
  optional retry, time box, fallbacks, compensation and checkpoint; then go to ``next``.
- ``parallel``: fan out named ``branches`` (or one ``each`` call per item of
  ``for_each``) under ``max_concurrency``, aggregate under a ``policy``.
- ``wait``: wait for signals (intents, slots, DTMF, tool results); ``on`` transitions
  with guards, ``timers`` that move on after a delay, ``sla`` levels that escalate.
- ``choice``: rules with guards over the context, first match wins, then ``default``.
- ``end``: finish with a status and an output.

Whether built in Python or loaded from YAML, a definition with an unknown target, an
unreachable or trap state, a task without a tool, a bad guard or a bad cron expression is
rejected here, before anything runs (``problems()`` lists each with its path).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestration.expr import ExpressionError, check_template, parse
from orchestration.graph import graph_problems

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(value: object) -> object:
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", value)
        if m is None:
            raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 2h, 1d)")
        return float(m.group(1)) * _UNITS[m.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetrySpec(_Model):
    max_attempts: int = Field(3, ge=1, le=100)
    backoff: Literal["exponential", "linear"] = "exponential"
    base: Duration = 0.5
    cap: Duration = 30.0
    jitter: Literal["none", "full", "equal", "decorrelated"] = "full"


# A tool's input: a mapping whose "$expr" values are filled in, or one "$expr" string
# naming a whole mapping ("$steps.lookup" passes a previous step's output on).
Template = dict[str, Any] | str


class ToolCall(_Model):
    tool: str
    input: Template = Field(default_factory=dict)
    retry: RetrySpec | None = None
    timeout: Duration | None = None


class TaskState(_Model):
    kind: Literal["task"] = "task"
    tool: str | None = None
    chain: list[str] = Field(default_factory=list)
    input: Template = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    compensate: ToolCall | None = None
    checkpoint: bool = False
    next: str | None = None
    on_error: str | None = None  # a state, or "rollback"; unset: the workflow fails

    @property
    def tools(self) -> list[str]:
        return ([self.tool] if self.tool else []) + list(self.chain)


class ParallelState(_Model):
    kind: Literal["parallel"] = "parallel"
    branches: dict[str, ToolCall] = Field(default_factory=dict)
    for_each: str | None = None  # an expression giving a list; ``item`` is each element
    each: ToolCall | None = None
    max_concurrency: int = Field(4, ge=1, le=1000)
    policy: Literal["all", "quorum", "best_effort"] = "all"
    quorum: int | None = Field(None, ge=1)
    next: str | None = None
    on_error: str | None = None


class Transition(_Model):
    signal: str  # exact name, or a prefix ending in "*": "intent.*"
    guard: str | None = None
    target: str


class TimerSpec(_Model):
    after: Duration
    target: str


class SlaLevel(_Model):
    after: Duration
    escalate: ToolCall
    target: str | None = None  # leave the state too, or stay and keep waiting


class WaitState(_Model):
    kind: Literal["wait"] = "wait"
    on: list[Transition] = Field(default_factory=list)
    timers: list[TimerSpec] = Field(default_factory=list)
    sla: list[SlaLevel] = Field(default_factory=list)


class Rule(_Model):
    guard: str
    target: str


class ChoiceState(_Model):
    kind: Literal["choice"] = "choice"
    rules: list[Rule] = Field(default_factory=list)
    default: str | None = None


class EndState(_Model):
    kind: Literal["end"] = "end"
    status: Literal["succeeded", "failed"] = "succeeded"
    output: dict[str, Any] = Field(default_factory=dict)


State = Annotated[
    TaskState | ParallelState | WaitState | ChoiceState | EndState, Field(discriminator="kind")
]


class InputField(_Model):
    type: Literal["string", "integer", "number", "boolean", "list", "object"] = "string"
    required: bool = True
    default: Any = None
    description: str = ""


class Schedule(_Model):
    cron: str
    input: dict[str, Any] = Field(default_factory=dict)


_KIND_HINTS = (("tool", "task"), ("chain", "task"), ("branches", "parallel"),
               ("each", "parallel"), ("on", "wait"), ("timers", "wait"), ("sla", "wait"),
               ("rules", "choice"), ("status", "end"))


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

    @model_validator(mode="before")
    @classmethod
    def _infer_kinds(cls, data: Any) -> Any:
        # YAML authors may leave ``kind`` out when the keys make it obvious
        if isinstance(data, dict) and isinstance(data.get("states"), dict):
            states = {}
            for name, body in data["states"].items():
                if isinstance(body, dict) and "kind" not in body:
                    hint = next((k for key, k in _KIND_HINTS if key in body), "task")
                    body = {"kind": hint, **body}
                states[name] = body
            data = {**data, "states": states}
        return data

    @model_validator(mode="after")
    def _check(self) -> WorkflowDef:
        found = problems(self)
        if found:
            raise ValueError("\n".join(f"{path}: {msg}" for path, msg in found))
        return self


def edges(state: TaskState | ParallelState | WaitState | ChoiceState | EndState
          ) -> list[tuple[str, str, str]]:
    """(path inside the state, target, label) for every way out of ``state``."""
    out: list[tuple[str, str, str]] = []
    if isinstance(state, TaskState | ParallelState):
        if state.next:
            out.append(("next", state.next, "ok"))
        if state.on_error and state.on_error != "rollback":
            out.append(("on_error", state.on_error, "error"))
    elif isinstance(state, WaitState):
        out += [(f"on[{i}].target", t.target, t.signal + (f" [{t.guard}]" if t.guard else ""))
                for i, t in enumerate(state.on)]
        out += [(f"timers[{i}].target", t.target, f"after {t.after:g}s")
                for i, t in enumerate(state.timers)]
        out += [(f"sla[{i}].target", s.target, f"SLA {s.after:g}s")
                for i, s in enumerate(state.sla) if s.target]
    elif isinstance(state, ChoiceState):
        out += [(f"rules[{i}].target", r.target, r.guard) for i, r in enumerate(state.rules)]
        if state.default:
            out.append(("default", state.default, "default"))
    return out


def _expr_problems(wf: WorkflowDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def guard(path: str, text: str | None, template: Any = None) -> None:
        try:
            if text is not None:
                parse(text)
            if template is not None:
                check_template(template)
        except ExpressionError as exc:
            found.append((path, f"bad expression: {exc}"))

    for name, st in wf.states.items():
        base = f"states.{name}"
        if isinstance(st, TaskState):
            guard(f"{base}.input", None, st.input)
            if st.compensate:
                guard(f"{base}.compensate.input", None, st.compensate.input)
        elif isinstance(st, ParallelState):
            for b, call in st.branches.items():
                guard(f"{base}.branches.{b}.input", None, call.input)
            guard(f"{base}.for_each", st.for_each)
            if st.each:
                guard(f"{base}.each.input", None, st.each.input)
        elif isinstance(st, WaitState):
            for i, t in enumerate(st.on):
                guard(f"{base}.on[{i}].guard", t.guard)
            for i, s in enumerate(st.sla):
                guard(f"{base}.sla[{i}].escalate.input", None, s.escalate.input)
        elif isinstance(st, ChoiceState):
            for i, r in enumerate(st.rules):
                guard(f"{base}.rules[{i}].guard", r.guard)
        else:
            guard(f"{base}.output", None, st.output)
    return found


def problems(wf: WorkflowDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if wf.start not in wf.states:
        found.append(("start", f"unknown state {wf.start!r}"))
    for name, st in wf.states.items():
        base = f"states.{name}"
        for path, target, _ in edges(st):
            if target not in wf.states:
                found.append((f"{base}.{path}", f"unknown target state {target!r}"))
        if isinstance(st, TaskState):
            if not st.tools:
                found.append((f"{base}.tool", "a task needs a tool (or a chain of tools)"))
            if not st.next:
                found.append((f"{base}.next", "a task needs a next state"))
            if st.on_error == "rollback" and not any(
                isinstance(s, TaskState) and s.checkpoint for s in wf.states.values()
            ):
                found.append((f"{base}.on_error", "rollback needs a task with checkpoint: true"))
        elif isinstance(st, ParallelState):
            if not st.branches and not (st.for_each and st.each):
                found.append((f"{base}.branches", "a parallel state needs branches, "
                              "or for_each with each"))
            if not st.next:
                found.append((f"{base}.next", "a parallel state needs a next state"))
            if st.policy == "quorum" and st.quorum is None:
                found.append((f"{base}.quorum", "policy quorum needs a quorum count"))
            if st.quorum is not None and st.branches and st.quorum > len(st.branches):
                found.append((f"{base}.quorum", f"quorum {st.quorum} is more than the "
                              f"{len(st.branches)} branches"))
        elif isinstance(st, WaitState) and not (
            st.on or st.timers or any(s.target for s in st.sla)
        ):
            found.append((base, "a wait state needs a transition or a timer"))
        elif isinstance(st, ChoiceState) and not st.default:
            found.append((f"{base}.default", "a choice needs a default, so no input can "
                          "leave it stuck"))
    if wf.schedule is not None and not croniter.is_valid(wf.schedule.cron):
        found.append(("schedule.cron", f"not a cron expression: {wf.schedule.cron!r}"))
    found += _expr_problems(wf)
    if found:
        return found
    # reachability: from start forwards, and to an end state backwards
    succ = {n: [t for _, t, _ in edges(s)] for n, s in wf.states.items()}
    finals = [n for n, s in wf.states.items() if isinstance(s, EndState)]
    return found + graph_problems(wf.start, succ, finals)
