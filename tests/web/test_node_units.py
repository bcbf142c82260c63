"""The front-end's unit tests (protocol codec, event reducer, replay, diagram layout) run
with node's built-in test runner; this runs them as part of ``make test``."""

from __future__ import annotations

import re

from tests.web.node import run_node


def test_node_unit_tests_pass() -> None:
    result = run_node("--test", "test/")
    summary = dict(re.findall(r"^# (pass|fail|tests) (\d+)$", result.stdout, re.M))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert int(summary["fail"]) == 0 and int(summary["pass"]) >= 20, summary
