"""Dialogue flows: each sub-agent's conversation, declared in YAML and checked when loaded.

A flow is a state machine over caller turns. State kinds:

- ``say``: speak, then go to ``next``.
- ``ask``: make sure ``slot`` is filled: if it is, go on at once; else speak the prompt
  and wait for a turn that fills it.
- ``listen``: speak (optional) and wait; the first transition in ``on`` whose
  ``intent`` / ``changed`` slots / ``guard`` all hold is taken; ``else`` if none.
- ``tool``: call a tool (retry, time box, fallbacks from the orchestration core); its
  output is ``steps.<state>``; then ``next``, or ``on_error`` if it failed.
- ``choice``: the first rule whose guard holds, else ``default``.
- ``done``: speak, optionally ``remember`` something for the caller, and hand back to the
  supervisor.
- ``escalate``: hand the call to a human.

Every state may ``set`` variables (``vars.<name>``) from expressions on entry. Text may
hold ``{expression}`` pieces: ``"{spoken.date} at {spoken.time}, shall I book it?"``.
Expressions use the orchestration guard language (``orchestration.expr``) over
``slots``, ``spoken`` (slots as they are said), ``steps``, ``vars``, ``turn`` (intent,
text, changed) and ``caller`` (name, returning).

Like workflows, a flow with an unknown target, an unreachable state, a state from which
no ``done`` or ``escalate`` can be reached, a bad expression, an unknown tool or a tool
the agent holds no permission for is rejected at load time, each problem with its path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.definition import Duration, RetrySpec
from orchestration.expr import ExpressionError, Node, parse
from orchestration.graph import graph_problems

ROOTS = frozenset({"slots", "spoken", "steps", "vars", "turn", "caller", "config"})
_PIECE = re.compile(r"\{([^{}]+)\}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class On(_Model):
    intent: str | list[str] | None = None
    changed: list[str] = Field(default_factory=list)  # any of these slots changed this turn
    guard: str | None = None
    target: str

    @property
    def intents(self) -> list[str]:
        return [self.intent] if isinstance(self.intent, str) else list(self.intent or [])


class _State(_Model):
    set: dict[str, str] = Field(default_factory=dict)


class SayState(_State):
    kind: Literal["say"] = "say"
    say: str
    next: str


class AskState(_State):
    kind: Literal["ask"] = "ask"
    slot: str
    say: str
    next: str


class ListenState(_State):
    kind: Literal["listen"] = "listen"
    say: str = ""
    on: list[On] = Field(default_factory=list)
    else_: str | None = Field(None, alias="else")


class ToolState(_State):
    kind: Literal["tool"] = "tool"
    tool: str
    input: dict[str, Any] | str = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    next: str
    on_error: str | None = None


class ChoiceRule(_Model):
    guard: str
    target: str


class ChoiceState(_State):
    kind: Literal["choice"] = "choice"
    rules: list[ChoiceRule] = Field(default_factory=list)
    default: str


class Remember(_Model):
    kind: str
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class DoneState(_State):
    kind: Literal["done"] = "done"
    say: str = ""
    remember: Remember | None = None


class EscalateState(_State):
    kind: Literal["escalate"] = "escalate"
    reason: str = "agent"


State = Annotated[
    SayState | AskState | ListenState | ToolState | ChoiceState | DoneState | EscalateState,
    Field(discriminator="kind"),
]
WAITING = (AskState, ListenState)
FINAL = (DoneState, EscalateState)


class FlowDef(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    intents: list[str] = Field(default_factory=list)  # routed to this agent
    slots: list[str] = Field(default_factory=list)  # cleared when a task starts
    permissions: list[str] = Field(default_factory=list)
    start: str
    states: dict[str, State]

    @model_validator(mode="after")
    def _check(self) -> FlowDef:
        found = problems(self)
        if found:
            raise ValueError("\n".join(f"{path}: {msg}" for path, msg in found))
        return self


def edges(state: Any) -> list[tuple[str, str]]:
    """(path inside the state, target) for every way out."""
    out: list[tuple[str, str]] = []
    if isinstance(state, SayState | AskState):
        out.append(("next", state.next))
    elif isinstance(state, ListenState):
        out += [(f"on[{i}].target", o.target) for i, o in enumerate(state.on)]
        if state.else_:
            out.append(("else", state.else_))
    elif isinstance(state, ToolState):
        out.append(("next", state.next))
        if state.on_error:
            out.append(("on_error", state.on_error))
    elif isinstance(state, ChoiceState):
        out += [(f"rules[{i}].target", r.target) for i, r in enumerate(state.rules)]
        out.append(("default", state.default))
    return out


def parse_expr(text: str) -> Node:
    return parse(text, ROOTS)


def template_pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def _expressions(state: Any) -> list[tuple[str, str]]:
    """(path, expression) for every expression in a state."""
    out = [(f"set.{k}", v) for k, v in state.set.items()]
    for attr in ("say",):
        text = getattr(state, attr, "")
        out += [(attr, p) for p in template_pieces(text)]
    if isinstance(state, ListenState):
        out += [(f"on[{i}].guard", o.guard) for i, o in enumerate(state.on) if o.guard]
    elif isinstance(state, ChoiceState):
        out += [(f"rules[{i}].guard", r.guard) for i, r in enumerate(state.rules)]
    elif isinstance(state, ToolState):
        out += [("input", e) for e in _template_exprs(state.input)]
    elif isinstance(state, DoneState) and state.remember is not None:
        out += [("remember.text", p) for p in template_pieces(state.remember.text)]
        out += [("remember.data", e) for e in _template_exprs(state.remember.data)]
    return out


def _template_exprs(template: Any) -> list[str]:
    if isinstance(template, str):
        return [template[1:]] if template.startswith("$") and not template.startswith("$$") else []
    if isinstance(template, dict):
        return [e for v in template.values() for e in _template_exprs(v)]
    if isinstance(template, list):
        return [e for v in template for e in _template_exprs(v)]
    return []


def problems(flow: FlowDef) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if flow.start not in flow.states:
        found.append(("start", f"unknown state {flow.start!r}"))
    for name, st in flow.states.items():
        base = f"states.{name}"
        for path, target in edges(st):
            if target not in flow.states:
                found.append((f"{base}.{path}", f"unknown target state {target!r}"))
        for key in st.set:
            if not re.fullmatch(r"(?:slots\.)?[a-z_][a-z0-9_]*", key):
                found.append((f"{base}.set.{key}", "set a variable name or slots.<name>"))
        if isinstance(st, ListenState) and not st.on and not st.else_:
            found.append((base, "a listen state needs a transition ('on') or 'else'"))
        for path, text in _expressions(st):
            try:
                parse_expr(text)
            except ExpressionError as exc:
                found.append((f"{base}.{path}", f"bad expression {text!r}: {exc}"))
    if found:
        return found
    succ = {n: [t for _, t in edges(s)] for n, s in flow.states.items()}
    finals = [n for n, s in flow.states.items() if isinstance(s, FINAL)]
    return found + graph_problems(
        flow.start, succ, finals, "trap state: no 'done' or 'escalate' is reachable"
    )


def tools_of(flow: FlowDef) -> list[tuple[str, str]]:
    """(path, tool name) of every tool a flow calls."""
    out: list[tuple[str, str]] = []
    for name, st in flow.states.items():
        if isinstance(st, ToolState):
            out.append((f"states.{name}.tool", st.tool))
            out += [(f"states.{name}.fallbacks[{i}]", f) for i, f in enumerate(st.fallbacks)]
    return out


def to_mermaid(flow: FlowDef) -> str:
    """``stateDiagram-v2`` text of a flow, for docs and the dashboard."""
    lines = ["stateDiagram-v2", f"    [*] --> {flow.start}"]
    for name, st in flow.states.items():
        for path, target in edges(st):
            label = path.split(".")[0].split("[")[0]
            if isinstance(st, ListenState) and path.startswith("on["):
                on = st.on[int(path[3:path.index("]")])]
                label = ",".join(on.intents + on.changed) or "guard"
            lines.append(f"    {name} --> {target}: {label}")
        if isinstance(st, FINAL):
            lines.append(f"    {name} --> [*]")
    return "\n".join(lines)
