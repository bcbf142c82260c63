"""The root exception of the orchestration subsystem.

Everything orchestration raises on purpose derives from ``OrchestrationError`` so that a
caller (the gateway, a workflow runner) can tell "this call's orchestration failed" apart
from a bug, and handle it without killing other sessions.
"""

from __future__ import annotations


class OrchestrationError(Exception):
    """Root of every error raised on purpose by the orchestration subsystem."""
