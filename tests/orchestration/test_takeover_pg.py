"""A replica SIGKILLed mid-step on a shared PostgreSQL log: another replica takes the run
over (its lease went with the dead one's connection), and not before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.replay import replay
from orchestration.log.views import project
from orchestration.workflow.pg_leases import RunLeases

ROOT = Path(__file__).resolve().parents[2]


def _worker(url: str, role: str, trace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.orchestration.takeover_worker", url, role, str(trace)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        text=True)


def _wait_for(path: Path, line: str, times: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().split().count(line) >= times:
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) before {line!r}")
        time.sleep(0.05)
    raise AssertionError(f"{line!r} x{times} never appeared in {path}")


def test_a_run_left_mid_step_by_a_killed_replica_is_taken_over(
        pg_url: str, tmp_path: Path) -> None:
    PostgresEventStore(pg_url, project).close()  # migrated before both replicas start
    mine, heirs = tmp_path / "victim.txt", tmp_path / "heir.txt"
    victim = _worker(pg_url, "victim", mine)
    heir = None
    try:
        _wait_for(mine, "block:b", 1, victim)
        heir = _worker(pg_url, "heir", heirs)
        # the heir looks at the run three times while its replica lives: not taken
        _wait_for(heirs, "pass", 3, heir)
        killed = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        out, _ = heir.communicate(timeout=120)
        taken_s = time.monotonic() - killed
    finally:
        for proc in (victim, heir):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL and heir.returncode == 0
    assert out.split() == ["victim"]
    print(f"taken over {taken_s:.2f} s after the SIGKILL")
    store = PostgresEventStore(pg_url, project)
    final = store.view("wf:victim")
    assert final is not None and final["status"] == "succeeded" and final["output"] == {"x": 3}
    # a ran once (before the kill), b twice (in flight when killed, then on the heir), c once
    assert mine.read_text().split() == ["inc:a", "block:b"]
    assert [w for w in heirs.read_text().split() if w != "pass"] == ["block:b", "inc:c"]
    assert replay(store).ok
    store.close()


def test_a_lost_lease_connection_is_replaced_and_its_leases_are_free(pg_url: str) -> None:
    a, b = RunLeases(pg_url), RunLeases(pg_url)
    assert a.try_hold("r1") and not b.try_hold("r1") and a.try_hold("r1")  # re-entrant
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "application_name = 'voxgate-leases' AND pid <> pg_backend_pid()")
    assert b.try_hold("r1")  # both sessions were cut: b reconnects; a's leases went
    assert not a.try_hold("r1") and not a.held_here("r1")  # a reconnects; b holds it
    b.release("r1")
    assert a.try_hold("r1")
    a.close()
    b.close()
