"""Event payloads, masked: every string in an event's data goes through the one redactor
(``memory/redact.py``: emails, cards, phones, national ids, IBANs, secrets, written or
spoken), except the identifiers an event needs intact.

The bus masks every payload with ``redact_data`` before anyone sees it (the event log,
``/ws/state`` and the dashboard, traces, metrics), and so does the workflow engine before
a run's events are written (``orchestration/workflow/instance.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memory.redact import redact_text

# keys whose values are identifiers we need intact (ids, sids, types), never free text
SAFE_KEYS = frozenset(
    {"session_id", "call_sid", "stream_sid", "reply_id", "type", "state", "previous", "run_id",
     "workflow", "step", "tool", "agent", "intent", "protocol", "reason_code", "mark"}
)


# deeper than this, a payload is not an event's data but a mistake; its rest is dropped
MAX_DEPTH = 32


def redact_value(value: Any, _path: frozenset[int] = frozenset()) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping | list | tuple):
        # a container inside itself (or nested absurdly deep) would recurse until
        # RecursionError inside EventBus.emit, failing the caller's step: cut it
        if id(value) in _path:
            return "<cycle>"
        if len(_path) >= MAX_DEPTH:
            return "<too deep>"
        inner = _path | {id(value)}
        if isinstance(value, Mapping):
            return _redact_mapping(value, inner)
        return [redact_value(v, inner) for v in value]
    return value


def _redact_mapping(data: Mapping[str, Any], path: frozenset[int]) -> dict[str, Any]:
    return {
        key: value if key in SAFE_KEYS and isinstance(value, str) else redact_value(value, path)
        for key, value in data.items()
    }


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A masked copy of an event payload (nested dicts and lists included; a container
    that holds itself becomes ``"<cycle>"``, nesting past ``MAX_DEPTH`` ``"<too deep>"``)."""
    return _redact_mapping(data, frozenset({id(data)}))
