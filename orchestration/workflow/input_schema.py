"""A workflow's declared input as a pydantic model: checked before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from orchestration.errors import OrchestrationError
from orchestration.workflow.definition import WorkflowDef

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




def describe_input(defn: WorkflowDef) -> dict[str, Any]:
    """The input's JSON schema, for the CLI listing and the REST API."""
    return input_model(defn).model_json_schema()
