"""One workflow instance in memory: its definition, its view and the events not yet
written. ``commit`` appends them with the stream version last seen (optimistic
concurrency) and folds the stored events into the view, exactly as replay would.

With ``sealing`` (the gateway's ``redact`` setting, on by default) the log gets each
event masked and the vault its original (``orchestration/log/vault.py``); the run's own view
is folded from the originals, so the run works on the real values while everything
written, shown or replayed is masked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestration.clock import Clock
from orchestration.log.store import EventStore, NewEvent, View, decode, encode
from orchestration.log.vault import Sealing
from orchestration.log.views import TERMINAL, new_workflow_view, project
from orchestration.workflow.definition import WorkflowDef


class Run:
    def __init__(
        self, defn: WorkflowDef, ident: str, store: EventStore, clock: Clock,
        view: View | None = None, sealing: Sealing | None = None,
    ) -> None:
        self.defn = defn
        self.ident = ident
        self.stream = f"wf:{ident}"
        self.store = store
        self.clock = clock
        self.sealing = sealing
        self.view: View = view if view is not None else new_workflow_view(ident)
        self.version: int = self.view.get("events", 0)
        self.pending: list[NewEvent] = []

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self.pending.append(NewEvent(self.stream, type, data, self.clock.now()))

    def commit(self) -> None:
        if not self.pending:
            return
        events, self.pending = self.pending, []
        logged = events if self.sealing is None else [self.sealing.seal(e) for e in events]
        stored = self.store.append(logged, {self.stream: self.version})
        for event, new, written in zip(stored, events, logged, strict=True):
            if new is not written:  # masked in the log: the run goes on with the original
                event = replace(event, data=decode(encode(new.data)))
            project(self.view, event)
        self.version = stored[-1].version
        if self.sealing is not None and self.view["status"] in TERMINAL:
            self.sealing.vault.forget(self.stream)  # a finished run needs its originals no more


def load_run(
    defn: WorkflowDef, ident: str, store: EventStore, clock: Clock, view: View,
    sealing: Sealing | None = None,
) -> Run:
    """The run of ``view`` (as stored) ready to go on: with sealing, its view is folded
    again from its events with their originals put back from the vault."""
    stream = f"wf:{ident}"
    original = None if sealing is None or view["status"] in TERMINAL else sealing.unseal(stream)
    if original is not None:
        live: View | None = None
        for event in store.read(stream=stream):
            live = project(live, replace(event, data=original(event.data)))
        if live is not None:
            view = live
    return Run(defn, ident, store, clock, view, sealing)
