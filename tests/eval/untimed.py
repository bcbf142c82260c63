"""A shipped suite without its timing gates, for tests.

Tests assert behaviour, not timings (the machines are shared and noisy: the catalog's
25 ms p50 and the smoke suite's 2 s p50 failed under load while every other gate held).
The gates themselves are tested by ``test_a_failed_threshold_exits_1``; the shipped
suites keep their limits for ``voxgate eval`` and ``make bench``."""

from __future__ import annotations

from pathlib import Path

import yaml

TIMING_GATES = ("latency_p50_ms", "latency_p95_ms", "cpu_s_per_call")


def untimed(suite: Path, folder: Path) -> Path:
    """A copy of ``suite`` in ``folder`` with no timing gate (the suites it is used on
    name their recordings by absolute path)."""
    raw = yaml.safe_load(suite.read_text(encoding="utf-8"))
    for limits in (raw.get("tiers") or {}).values():
        for gate in TIMING_GATES:
            limits.pop(gate, None)
    copy = folder / f"untimed-{suite.name}"
    copy.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return copy
