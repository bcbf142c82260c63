"""Evaluation suites: what a caller says (or what a workflow is sent) and what must happen.

A suite is one YAML file (``evals/*.yaml``, docs/evaluation.md). Two kinds:

* ``kind: voice`` -- calls placed through the real audio path. Each scenario is one or more
  calls; each call is a list of caller turns (text to synthesize, an audio file, DTMF,
  silence) with what should be heard (transcript, intent, slots) and what should happen
  (tools, events, replies, how the call ends).
* ``kind: workflow`` -- runs of the orchestration catalog, driven directly (no audio):
  an input, a script of signals and clock advances, and the status, state, output and
  steps expected.

Both name a latency/cost ``tier`` per scenario; the suite gives each tier's thresholds.
Everything is checked when the file is loaded (``gateway.evaluation.load``): a bad suite
raises ``SuiteError`` listing every problem as ``<file>: <path inside it>: <message>``,
before a call is placed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestration.errors import OrchestrationError
from orchestration.workflow.definition import Duration

NAME = r"^[a-z][a-z0-9_.-]*$"
VARIANT = re.compile(
    r"^(?:clean|telephone|noise_(?P<snr>-?\d+(?:\.\d+)?)db|speed_(?P<speed>\d+(?:\.\d+)?))$"
)


class SuiteError(OrchestrationError):
    """A suite file that cannot be run: unreadable, not YAML, or failing its checks."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {path}: {msg}" for path, msg in problems)
        super().__init__(f"invalid evaluation suite {source}:\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- thresholds ---------------------------------------------------------------------


class Tier(_Strict):
    """Latency and cost limits of one workflow tier. Latency is per caller turn (voice:
    last voiced caller frame -> first agent audio, as the caller hears it) or per run
    (workflow: start -> last scripted signal handled). Cost is per call or run."""

    latency_p50_ms: float | None = Field(None, gt=0)
    latency_p95_ms: float | None = Field(None, gt=0)
    cpu_s_per_call: float | None = Field(None, gt=0)  # mean server CPU seconds
    tokens_per_call: float | None = Field(None, ge=0)  # mean language-model tokens


class Thresholds(_Strict):
    """Suite-level gates; an unset one is reported but does not fail the suite."""

    wer_max: float | None = Field(None, ge=0)
    intent_accuracy_min: float | None = Field(None, ge=0, le=1)
    slot_accuracy_min: float | None = Field(None, ge=0, le=1)
    outcome_min: float | None = Field(1.0, ge=0, le=1)  # runs whose expectations all held
    completeness_min: float | None = Field(1.0, ge=0, le=1)
    consistency_min: float | None = Field(None, ge=0, le=1)


# --- voice ----------------------------------------------------------------------------


class Turn(_Strict):
    """One caller turn. Exactly one of ``say`` (synthesized with piper), ``audio`` (a WAV,
    relative to the suite file), ``dtmf`` (keys) or ``silence_ms``."""

    say: str | None = None
    audio: Path | None = None
    dtmf: str | None = Field(None, pattern=r"^[0-9*#A-D]+$")
    silence_ms: int | None = Field(None, gt=0, le=60_000)
    # when to start: once the agent has spoken and been quiet this long (a polite caller),
    # or this long after agent audio starts (talking over it: a barge-in)
    after_quiet_ms: int = Field(600, ge=0)
    barge_in_ms: int | None = Field(None, ge=0)
    wait_limit_s: float = Field(25.0, gt=0)
    # what should be heard; transcript defaults to ``say``. ``check_transcript: false``
    # leaves a turn out of the word error rate (e.g. a secret the events mask)
    transcript: str | None = None
    check_transcript: bool = True
    intent: str | None = None
    slots: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> Turn:
        given = [k for k in ("say", "audio", "dtmf", "silence_ms") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a turn needs exactly one of say, audio, dtmf, silence_ms"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.say is not None and not self.say.strip():
            raise ValueError("say must not be empty")
        return self

    @property
    def expected_transcript(self) -> str | None:
        if not self.check_transcript:
            return None
        return self.transcript if self.transcript is not None else self.say


class CallExpect(_Strict):
    """What must happen in a call. Tools and events are checked in order (each list is a
    subsequence of what happened); ``replies`` are substrings of the agent's speech."""

    tools: list[str] = Field(default_factory=list)
    forbid_tools: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)
    forbid_events: list[str] = Field(default_factory=list)
    replies: list[str] = Field(default_factory=list)
    ended_by: Literal["agent", "caller"] | None = None
    transfer: str | None = None  # the call.transfer target; "" means "no transfer"
    denials: list[str] = Field(default_factory=list)  # denial event types that must occur
    answered: bool = True  # every spoken turn is transcribed and answered


class Call(_Strict):
    caller: str | None = "+15005550006"
    turns: list[Turn] = Field(min_length=1)
    expect: CallExpect = Field(default_factory=CallExpect)
    max_call_s: float = Field(120.0, gt=0)


class VoiceScenario(_Strict):
    """One or more calls in order (later calls see what earlier ones stored). ``turns``,
    ``expect`` and ``caller`` at the top are shorthand for a single call."""

    name: str = Field(pattern=NAME)
    description: str = ""
    tier: str
    calls: list[Call] = Field(min_length=1)
    protocol: Literal["twilio", "browser"] | None = None  # default: the suite's

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "turns" in data:
            if "calls" in data:
                raise ValueError("give either turns (one call) or calls, not both")
            data = dict(data)
            call = {k: data.pop(k) for k in ("turns", "expect", "caller", "max_call_s")
                    if k in data}
            data["calls"] = [call]
        return data


class Agents(_Strict):
    """Who answers the calls when the harness starts the gateway itself.

    ``builtin``: the gateway's minimal agent. ``agents``: the hierarchical voice agents
    (``make_agent_factory``), with an optional agents YAML, ``overrides`` of it, and a
    pinned ``today`` so relative dates ("on Tuesday") resolve the same on every run."""

    factory: Literal["builtin", "agents"] = "builtin"
    config: Path | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    today: date | None = None


# --- workflows -----------------------------------------------------------------------


class ScriptStep(_Strict):
    """``signal`` (with ``data``; ``accepted`` is what must come back), or ``advance``
    the clock by a duration and tick timers and schedules."""

    signal: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    accepted: bool | None = True
    advance: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> ScriptStep:
        if (self.signal is None) == (self.advance is None):
            raise ValueError("a script step is either a signal or an advance")
        return self


class RunExpect(_Strict):
    status: str | None = None
    state: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)  # a subset of the run's output
    steps: list[str] = Field(default_factory=list)  # steps that must have completed
    forbid_steps: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)  # in order, as a subsequence
    events: list[str] = Field(default_factory=list)
    forbid_events: list[str] = Field(default_factory=list)
    denials: list[str] = Field(default_factory=list)


class WorkflowScenario(_Strict):
    name: str = Field(pattern=NAME)
    description: str = ""
    tier: str
    workflow: str
    input: dict[str, Any] = Field(default_factory=dict)
    script: list[ScriptStep] = Field(default_factory=list)
    expect: RunExpect = Field(default_factory=RunExpect)


# --- suites ---------------------------------------------------------------------------


class _SuiteBase(_Strict):
    suite: str = Field(pattern=NAME)
    description: str = ""
    tiers: dict[str, Tier] = Field(min_length=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    repeat: int = Field(1, ge=1, le=100)
    source: Path = Path("<memory>")

    def _tier_problems(self, scenarios: Sequence[VoiceScenario | WorkflowScenario]
                       ) -> list[str]:
        problems: list[str] = []
        names = [s.name for s in scenarios]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"scenarios: duplicate scenario name {dup!r}")
        for i, s in enumerate(scenarios):
            if s.tier not in self.tiers:
                problems.append(
                    f"scenarios[{i}].tier: unknown tier {s.tier!r} "
                    f"(the suite defines {', '.join(sorted(self.tiers))})"
                )
        return problems


class VoiceSuite(_SuiteBase):
    kind: Literal["voice"]
    protocol: Literal["twilio", "browser"] = "twilio"
    variants: list[str] = Field(default_factory=lambda: ["clean"])
    agents: Agents = Field(default_factory=Agents)
    # run: a fresh gateway and data directory for every run (repeatable outcomes);
    # suite: one for the whole suite (state carries over between scenarios)
    isolation: Literal["run", "suite"] = "run"
    scenarios: list[VoiceScenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> VoiceSuite:
        problems = self._tier_problems(self.scenarios)
        for i, v in enumerate(self.variants):
            if not VARIANT.match(v):
                problems.append(
                    f"variants[{i}]: unknown variant {v!r} "
                    "(clean, telephone, noise_<snr>db, speed_<factor>)"
                )
        if "clean" not in self.variants:
            problems.append("variants: must include clean (the reference for consistency)")
        if len(set(self.variants)) != len(self.variants):
            problems.append("variants: a variant is listed twice")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class WorkflowSuite(_SuiteBase):
    kind: Literal["workflow"]
    scenarios: list[WorkflowScenario] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> WorkflowSuite:
        problems = self._tier_problems(self.scenarios)
        if problems:
            raise ValueError("\n".join(problems))
        return self


Suite = VoiceSuite | WorkflowSuite


def variant_params(name: str) -> tuple[str, float | None]:
    """``noise_20db`` -> ("noise", 20.0); ``speed_1.1`` -> ("speed", 1.1);
    ``telephone`` -> ("telephone", None)."""
    m = VARIANT.match(name)
    if m is None:
        raise ValueError(f"unknown variant {name!r}")
    if m.group("snr") is not None:
        return "noise", float(m.group("snr"))
    if m.group("speed") is not None:
        return "speed", float(m.group("speed"))
    return name, None
