"""A process killed with SIGKILL mid-workflow: another process resumes it from the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.views import project
from orchestration.workflow.engine import Engine
from tests.orchestration.crash_worker import FLOW
from tests.orchestration.toolkit import Toolkit

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    # Polls a file the child writes; a wait for an event, not a timing assertion.
    done = threading.Event()
    for _ in range(600):
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, "the worker died before reaching the blocking step"
        done.wait(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_sigkill_mid_workflow_then_resume_skips_done_steps(tmp_path: Path) -> None:
    db, trace = tmp_path / "log.db", tmp_path / "trace.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.orchestration.crash_worker", str(db), str(trace)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _wait_for(trace, "block:b", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = SQLiteEventStore(db, project)
    view = store.view("wf:victim")
    assert view is not None and view["status"] == "running" and view["state"] == "b"
    assert view["done"] == ["a"] and view["running"] == {"b": 1}
    kit = Toolkit(trace)
    assert asyncio.run(Engine(store, kit.registry, [FLOW]).resume_all()) == ["victim"]
    final = store.view("wf:victim")
    assert final is not None and final["status"] == "succeeded" and final["output"] == {"x": 3}
    # a ran once (before the kill), b twice (in flight when killed), c once
    assert trace.read_text().split() == ["inc:a", "block:b", "block:b", "inc:c"]
    assert replay(store).ok
    store.close()
