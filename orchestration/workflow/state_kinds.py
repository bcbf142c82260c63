"""The kinds of state a workflow definition is made of (``definition.WorkflowDef``).

Six kinds, for back-office workflows and the voice agents' conversations alike:

- ``task``: call a tool (or a ``chain`` of tools, each fed the previous output), with
  optional retry, time box, fallbacks, compensation and checkpoint; then ``next``, or
  ``on_error`` if it failed.
- ``parallel``: fan out named ``branches`` (or one ``each`` call per item of
  ``for_each``) under ``max_concurrency``, aggregate under a ``policy``.
- ``wait``: wait for a signal (``on`` with ``signal``), a caller's turn (``on`` with
  ``intent`` / ``changed`` slots / ``guard``, else ``else``), a slot to be filled
  (``slot`` + ``next``: skipped when the slot is known), or a timer; ``say`` is the
  question it asks on entering; ``sla`` levels escalate while it waits.
- ``choice``: rules with guards over the context, first match wins, then ``default``.
- ``say``: speak, then ``next``.
- ``end``: optionally speak and ``remember`` something for the caller, and finish with a
  status (``succeeded``, ``failed``, or ``escalated`` with a ``reason``: hand the call to
  a person) and an output.

Every state may ``set`` variables (``vars.<name>``) or slots (``slots.<name>``) from
expressions when it is entered. Text (``say``, ``remember.text``) holds ``{expression}``
pieces: ``"{spoken.date} at {spoken.time}, shall I book it?"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


class _State(_Model):
    # name -> expression, evaluated when the state is entered: "verb" sets vars.verb,
    # "slots.date" the slot
    set: dict[str, str] = Field(default_factory=dict)


class TaskState(_State):
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


class ParallelState(_State):
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
    """A way out of a wait state: a signal (``signal``), or a caller's turn (``intent``,
    ``changed`` slots, ``guard``: all that are given must hold)."""

    signal: str | None = None  # exact name, or a prefix ending in "*": "intent.*"
    intent: str | list[str] | None = None
    changed: list[str] = Field(default_factory=list)  # any of these slots changed this turn
    guard: str | None = None
    target: str

    @property
    def intents(self) -> list[str]:
        return [self.intent] if isinstance(self.intent, str) else list(self.intent or [])

    @property
    def on_turn(self) -> bool:
        return self.signal is None

    def label(self) -> str:
        if self.signal is not None:
            head = self.signal
        else:
            parts = ["|".join(self.intents)] if self.intents else []
            parts += [f"changed {','.join(self.changed)}"] if self.changed else []
            head = " ".join(parts) or "turn"
        return head + (f" [{self.guard}]" if self.guard else "")


class TimerSpec(_Model):
    after: Duration
    target: str


class SlaLevel(_Model):
    after: Duration
    escalate: ToolCall
    target: str | None = None  # leave the state too, or stay and keep waiting


class WaitState(_State):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: Literal["wait"] = "wait"
    say: str = ""  # the question, asked on entering (and again when a turn is not understood)
    slot: str | None = None  # an "ask": go to ``next`` once this slot is known
    next: str | None = None
    on: list[Transition] = Field(default_factory=list)
    else_: str | None = Field(None, alias="else")  # any other caller turn
    timers: list[TimerSpec] = Field(default_factory=list)
    sla: list[SlaLevel] = Field(default_factory=list)

    @property
    def intents(self) -> list[str]:
        """The intents this state expects from the caller (the NLU favours them)."""
        return [i for t in self.on if t.on_turn for i in t.intents]


class Rule(_Model):
    guard: str
    target: str


class ChoiceState(_State):
    kind: Literal["choice"] = "choice"
    rules: list[Rule] = Field(default_factory=list)
    default: str | None = None


class SayState(_State):
    kind: Literal["say"] = "say"
    say: str
    next: str


class Remember(_Model):
    """Something to keep in the caller's long-term memory when the run ends here."""

    kind: str
    text: str
    data: dict[str, Any] = Field(default_factory=dict)


class EndState(_State):
    kind: Literal["end"] = "end"
    status: Literal["succeeded", "failed", "escalated"] = "succeeded"
    output: dict[str, Any] = Field(default_factory=dict)
    say: str = ""
    remember: Remember | None = None
    reason: str = ""  # why: for ``escalated``, what the person taking the call is told


AnyState = TaskState | ParallelState | WaitState | ChoiceState | SayState | EndState
State = Annotated[AnyState, Field(discriminator="kind")]
KINDS = ("task", "parallel", "wait", "choice", "say", "end")

# keys that make a state's kind obvious when ``kind`` is left out, first match wins
_KIND_HINTS = (("tool", "task"), ("chain", "task"), ("branches", "parallel"),
               ("each", "parallel"), ("on", "wait"), ("timers", "wait"), ("sla", "wait"),
               ("slot", "wait"), ("else", "wait"), ("rules", "choice"), ("status", "end"),
               ("output", "end"), ("remember", "end"))


def infer_kind(body: dict[str, Any]) -> str:
    hint = next((k for key, k in _KIND_HINTS if key in body), None)
    if hint is not None:
        return hint
    if "say" in body:
        return "say" if "next" in body else "end"
    return "task"


def edges(state: AnyState) -> list[tuple[str, str, str]]:
    """(path inside the state, target, label) for every way out of ``state``."""
    out: list[tuple[str, str, str]] = []
    if isinstance(state, SayState):
        out.append(("next", state.next, "next"))
    elif isinstance(state, TaskState | ParallelState):
        if state.next:
            out.append(("next", state.next, "ok"))
        if state.on_error and state.on_error != "rollback":
            out.append(("on_error", state.on_error, "error"))
    elif isinstance(state, WaitState):
        if state.slot and state.next:
            out.append(("next", state.next, f"{state.slot} known"))
        out += [(f"on[{i}].target", t.target, t.label()) for i, t in enumerate(state.on)]
        if state.else_:
            out.append(("else", state.else_, "else"))
        out += [(f"timers[{i}].target", t.target, f"after {t.after:g}s")
                for i, t in enumerate(state.timers)]
        out += [(f"sla[{i}].target", s.target, f"SLA {s.after:g}s")
                for i, s in enumerate(state.sla) if s.target]
    elif isinstance(state, ChoiceState):
        out += [(f"rules[{i}].target", r.target, r.guard) for i, r in enumerate(state.rules)]
        if state.default:
            out.append(("default", state.default, "default"))
    return out
