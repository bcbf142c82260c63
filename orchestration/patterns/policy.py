"""Policy checks before every tool execution: declarative rules in YAML.

A rule names the tools it governs (glob patterns), a condition in the guard language
(``orchestration/expr.py``, parsed when the file is loaded, never ``eval``), and what
happens when the condition holds: ``deny``, or ``approval`` (the action needs a human's
approval first, which a voice call cannot give, so it does not run and the agent says so).

    rules:
      - name: business_hours
        tools: ["calendar.book", "calendar.move"]
        when: "time.hour < 9 or time.hour >= 17 or time.weekday >= 5"
        message: "Bookings can only be made during business hours."

The condition sees ``input`` (the tool's input), ``agent``, ``caller`` (``id``, ``roles``),
``time`` (``hour``, ``minute``, ``weekday`` 0 = Monday, ``date``) and ``granted`` (the
agent's permissions). Every decision is an event: ``policy.allowed`` or ``policy.denied``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.errors import OrchestrationError
from orchestration.expr import ExpressionError, Node, parse, truthy
from orchestration.patterns.tools import ToolError

POLICY_ROOTS = frozenset({"input", "agent", "caller", "time", "granted"})
DEFAULT_POLICIES = Path(__file__).parent / "policies.yaml"


class PolicyFileError(OrchestrationError):
    """A policy file that cannot be read or has a bad rule; names the file and the path."""


class PolicyDenied(ToolError):
    """A policy rule stopped a tool before it ran (never retried, never a breaker failure)."""

    def __init__(self, tool: str, rule: str, message: str, approval: bool) -> None:
        super().__init__(tool, f"denied by policy {rule!r}: {message}")
        self.rule = rule
        self.message = message
        self.approval = approval


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    tools: list[str] = Field(min_length=1)
    when: str
    effect: Literal["deny", "approval"] = "deny"
    message: str

    @field_validator("when")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            parse(value, POLICY_ROOTS)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        return value

    def governs(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.tools)


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[PolicyRule] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str | None = None
    message: str = ""
    approval: bool = False


class Policy:
    def __init__(self, rules: list[PolicyRule], clock: Callable[[], datetime] = datetime.now):
        self.rules = rules
        self._clock = clock
        self._conditions: dict[str, Node] = {r.name: parse(r.when, POLICY_ROOTS) for r in rules}

    @classmethod
    def load(
        cls, path: Path = DEFAULT_POLICIES, clock: Callable[[], datetime] = datetime.now
    ) -> Policy:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return cls(PolicyFile.model_validate(raw).rules, clock)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PolicyFileError(f"{path}: {where}: {first['msg']}") from None
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyFileError(f"{path}: {exc}") from None

    def check(
        self,
        tool: str,
        input: Mapping[str, Any],
        *,
        agent: str = "",
        caller: Mapping[str, Any] | None = None,
        granted: list[str] | None = None,
    ) -> Decision:
        now = self._clock()
        ctx = {
            "input": dict(input),
            "agent": agent,
            "caller": dict(caller or {}),
            "granted": list(granted or []),
            "time": {
                "hour": now.hour,
                "minute": now.minute,
                "weekday": now.weekday(),
                "date": now.date().isoformat(),
            },
        }
        for rule in self.rules:
            if rule.governs(tool) and truthy(self._conditions[rule.name], ctx):
                return Decision(False, rule.name, rule.message, rule.effect == "approval")
        return Decision(True)
