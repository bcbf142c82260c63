"""Budgets for the fuzzers that run in `make test`.

Every hypothesis fuzzer of a parser that takes outside input gets a fixed number of
examples and a per-example deadline, so the whole set stays within about 90 s on the
2-core CI machine (docs/security.md, "Fuzzing", lists them and their budgets). The
deadline is generous on purpose: it is there to catch a parser that blows up (a
backtracking regex, an exponential parse), not to time a busy machine.
``VOXGATE_FUZZ_SCALE=20`` runs twenty times the examples, for a longer hunt by hand.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

F = TypeVar("F", bound=Callable[..., Any])

SCALE = float(os.environ.get("VOXGATE_FUZZ_SCALE", "1"))


def budget(examples: int, deadline_ms: int = 1000) -> Callable[[F], F]:
    """``@budget(300)`` above ``@given``: at most ``examples`` inputs (times the scale),
    each within ``deadline_ms``."""
    chosen = settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=timedelta(milliseconds=deadline_ms),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    def apply(test: F) -> F:
        wrapped: F = chosen(test)
        return wrapped

    return apply
