"""Where a service's status comes from, other than a health URL.

* **A readings provider**: a callable the host application plugs in, returning a
  ``Reading``. Orchestration only defines the interface; the gateway plugs in its own
  components (speech worker pools, event log, live calls, models) as the provider
  ``gateway`` (gateway/observability/health.py), so "how is the gateway doing?" is answered from
  what
  the process really sees.
* **A status file** (``ops.status_file``): JSON or YAML ``{service: {status, metric:
  number}}`` kept by some other tool.
* **The sample file** shipped with the package (``agents/sample_status.yaml``), used for a
  service that has no provider, no URL and no status file, so the demo configuration
  answers something; whoever reads it out says it is sample data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SAMPLE_STATUS = Path(__file__).parent / "sample_status.yaml"


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at a service: ``status`` (up, degraded, down, starting...), numeric
    ``metrics`` for the alert rules, and ``detail``, a sentence with the figures a caller
    wants to hear ("1 live call. Speech recognition idle.")."""

    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    detail: str = ""


# called on the event loop for every probe: it must be quick and must not block
ReadingsProvider = Callable[[], Reading]


class ReadingUnavailable(Exception):
    """The source gave no status this time (file unreadable, service missing from it)."""


_SYNONYMS = {"ok": "up", "healthy": "up", "pass": "up"}


def status_word(raw: Any) -> str:
    word = str(raw).strip().lower()
    return _SYNONYMS.get(word, word)


def numeric(entry: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a status answer (booleans are not metrics)."""
    return {k: float(v) for k, v in entry.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def from_file(path: Path, service: str) -> Reading:
    """The service's entry in a JSON or YAML status file (JSON is YAML)."""
    try:
        data = yaml.safe_load(path.read_text())
        entry = data[service]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ReadingUnavailable(f"{service}: status file {path.name} unreadable "
                                 f"({type(exc).__name__})") from None
    if isinstance(entry, str):
        return Reading(status_word(entry))
    if not isinstance(entry, dict):
        raise ReadingUnavailable(f"{service}: entry in {path.name} is not a mapping")
    return Reading(status_word(entry.get("status", "unknown")), numeric(entry))


def from_provider(provider: ReadingsProvider, service: str) -> Reading:
    """A plugged-in provider's reading; its failure is a missing reading, never a crash."""
    try:
        reading = provider()
    except Exception as exc:  # the provider is the host's code: any failure is "no reading"
        raise ReadingUnavailable(f"{service}: readings failed ({exc!r})") from None
    return Reading(status_word(reading.status), dict(reading.metrics), reading.detail)
