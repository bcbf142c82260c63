"""One workflow instance in memory: its definition, its view and the events not yet
written. ``commit`` appends them with the stream version last seen (optimistic
concurrency) and folds the stored events into the view, exactly as replay would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from orchestration.clock import Clock
from orchestration.definition import WorkflowDef
from orchestration.errors import OrchestrationError
from orchestration.store import EventStore, NewEvent, View
from orchestration.views import new_workflow_view, project

_TYPES: dict[str, Any] = {
    "string": str, "integer": int, "number": float, "boolean": bool,
    "list": list[Any], "object": dict[str, Any],
}
_MODELS: dict[tuple[str, int], type[BaseModel]] = {}


class InputInvalid(OrchestrationError):
    """A workflow's input fails the workflow's input schema."""


def input_model(defn: WorkflowDef) -> type[BaseModel]:
    key = (defn.name, id(defn))
    model = _MODELS.get(key)
    if model is None:
        fields: dict[str, Any] = {
            name: (_TYPES[f.type], ... if f.required and f.default is None else f.default)
            for name, f in defn.input.items()
        }
        model = create_model(
            f"{defn.name}_input", __config__=ConfigDict(extra="forbid", strict=False), **fields
        )
        _MODELS[key] = model
    return model


def validate_input(defn: WorkflowDef, raw: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return input_model(defn).model_validate(dict(raw)).model_dump(mode="json")
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in exc.errors()
        )
        raise InputInvalid(f"input for workflow {defn.name!r} is invalid: {details}") from None


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
