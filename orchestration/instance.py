"""One workflow instance in memory: its definition, its view and the events not yet
written. ``commit`` appends them with the stream version last seen (optimistic
concurrency) and folds the stored events into the view, exactly as replay would."""

from __future__ import annotations

from typing import Any

from orchestration.clock import Clock
from orchestration.definition import WorkflowDef
from orchestration.store import EventStore, NewEvent, View
from orchestration.views import new_workflow_view, project


class Run:
    def __init__(
        self, defn: WorkflowDef, ident: str, store: EventStore, clock: Clock,
        view: View | None = None,
    ) -> None:
        self.defn = defn
        self.ident = ident
        self.stream = f"wf:{ident}"
        self.store = store
        self.clock = clock
        self.view: View = view if view is not None else new_workflow_view(ident)
        self.version: int = self.view.get("events", 0)
        self.pending: list[NewEvent] = []

    def emit(self, type: str, data: dict[str, Any]) -> None:
        self.pending.append(NewEvent(self.stream, type, data, self.clock.now()))

    def commit(self) -> None:
        if not self.pending:
            return
        events, self.pending = self.pending, []
        stored = self.store.append(events, {self.stream: self.version})
        for event in stored:
            project(self.view, event)
        self.version = stored[-1].version
