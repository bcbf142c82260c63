"""Event payloads, masked: every string in an event's data goes through the one redactor
(``memory/redact.py``: emails, cards, phones, national ids, IBANs, secrets, written or
spoken), except the identifiers an event needs intact.

The bus masks every payload with ``redact_data`` before anyone sees it (the event log,
``/ws/state`` and the dashboard, traces, metrics), and so does the workflow engine before
a run's events are written (``orchestration/instance.py``).
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


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_data(value)
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A masked copy of an event payload (nested dicts and lists included)."""
    return {
        key: value if key in SAFE_KEYS and isinstance(value, str) else redact_value(value)
        for key, value in data.items()
    }
