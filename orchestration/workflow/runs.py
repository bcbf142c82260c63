"""What the engine runs: a ``RunHandle``, whatever keeps its events.

The engine decides and the run keeps: ``emit`` queues an event, ``commit`` makes the
queued events part of the run's view (folded by ``views.fold_workflow``, the same fold
replay uses), ``durable`` waits until they are in the log (awaited before a tool runs, so
a resumed run knows which step was in flight and never runs a completed one again).

Two kinds of run implement it:

- ``StoreRun``: a back-office instance on its own stream ``wf:<id>``: ``commit`` appends
  to the event store with the version last seen (optimistic concurrency), so it is
  durable at once;
- ``call_run.CallRun``: a voice agent's conversation bound to one call: its events go on
  the call's bus and reach the log in the call's stream ``call:<session>``.

A run also supplies what its expressions may read (``context``), who is acting (for the
policy rules), and listeners for what a conversation says and remembers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestration.log.store import View
from orchestration.log.views import fold_workflow
from orchestration.patterns.runner import ToolRunner
from orchestration.workflow.definition import WorkflowDef
from orchestration.workflow.instance import Run


@dataclass(frozen=True, slots=True)
class Turn:
    """A caller's turn, as transitions see it (``turn.intent``, ``turn.text``,
    ``turn.changed``: the slots it changed)."""

    intent: str
    text: str = ""
    changed: tuple[str, ...] = ()

    def as_ctx(self) -> dict[str, Any]:
        return {"intent": self.intent, "text": self.text, "changed": list(self.changed)}


NO_TURN = Turn("")


class RunHandle(Protocol):
    defn: WorkflowDef
    ident: str
    turn: Turn

    @property
    def view(self) -> View: ...

    @property
    def runner(self) -> ToolRunner | None:
        """The tool runner for this run's tools; None: the engine's own."""

    def emit(self, type: str, data: dict[str, Any]) -> None: ...

    def commit(self) -> None: ...

    async def durable(self) -> None: ...

    def context(self) -> dict[str, Any]:
        """What expressions read: the view's context, and whatever the run adds."""

    def who(self) -> dict[str, Any]:
        """Who is acting, for the policy rules: ``{agent, caller: {id, roles, ...}}``."""

    def say(self, text: str) -> None:
        """A text to speak, as soon as it is known (the caller's audio starts on it)."""

    def remember(self, kind: str, text: str, data: Mapping[str, Any]) -> None:
        """Keep something in the caller's long-term memory (an end state's ``remember``)."""


class StoreRun(Run):
    """A back-office run: its stream ``wf:<id>`` in the store, committed as it goes."""

    turn = NO_TURN

    @property
    def runner(self) -> ToolRunner | None:
        return None

    async def durable(self) -> None:
        """A commit to the store is durable already."""

    def context(self) -> dict[str, Any]:
        view = self.view
        if self.pending:
            # a state entered in this batch reads what the batch did before it (a step's
            # output, the input of a run just started): fold a copy, the log is unchanged
            view = copy.deepcopy(view)
            for event in self.pending:
                fold_workflow(view, event.type, event.data, event.ts or 0.0)
        return {**view["ctx"], "run": {"id": self.ident, "workflow": self.defn.name,
                                      "key": f"wf:{self.ident}"}}

    def who(self) -> dict[str, Any]:
        """The workflow, and its caller as its input names them (``caller``, ``roles``)."""
        data = self.view["ctx"].get("input", {})
        roles = data.get("roles", [])
        return {"agent": self.defn.name,
                "caller": {"id": data.get("caller"),
                           "roles": roles if isinstance(roles, list) else []}}

    def say(self, text: str) -> None:
        """Back-office runs have no caller: ``Engine.start`` refuses definitions that talk."""

    def remember(self, kind: str, text: str, data: Mapping[str, Any]) -> None:
        self.emit("memory.skipped", {"kind": kind, "reason": "no caller"})
