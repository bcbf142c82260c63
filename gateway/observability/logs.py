"""Structured JSON logs: one object per line, each carrying the call's session and trace ids.

Every module logs through the standard library; structlog's formatter turns each record
into JSON and adds the context bound for the current task (the connection handlers bind
``session_id``). The trace id comes from the call tracer, so a log line and its trace can
be joined. Messages pass through the redactor: a log line never holds a phone number.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import structlog

from memory.redact import redact_text

TraceLookup = Callable[[str], str | None]

_trace_lookup: TraceLookup | None = None


def set_trace_lookup(lookup: TraceLookup | None) -> None:
    global _trace_lookup
    _trace_lookup = lookup


def _add_trace_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    session_id = event.get("session_id")
    if _trace_lookup is not None and isinstance(session_id, str):
        trace_id = _trace_lookup(session_id)
        if trace_id is not None:
            event["trace_id"] = trace_id
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = redact_text(message)
    return event


def bind_session(session_id: str) -> None:
    """Tag every log line of the current task (and tasks it starts) with the session."""
    structlog.contextvars.bind_contextvars(session_id=session_id)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> logging.Handler:
    """Send every standard-library log record to ``stream`` as one JSON object a line."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_id,
            _redact,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_voxgate", False)]:
        root.removeHandler(old)
    handler._voxgate = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
