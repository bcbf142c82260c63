"""Run leases on PostgreSQL: a session-level advisory lock per run, on a connection of
the replica's own (``pg_try_advisory_lock(class, hashtext(run id))``).

Why advisory locks rather than a lease table with expiry times: the lock lives exactly as
long as the holder's database session, so a replica that dies (SIGKILL, a crash) loses its
leases the moment the server sees its connection close, and no clock or renewal loop is
involved; a machine that vanishes without closing its sockets is noticed by TCP
keepalives (``keepalives_idle`` 5 s, 3 probes 2 s apart: about 11 s). The engine takes a
run's lease around every step of it (``Engine._lock``), so a run held by a live replica is
never advanced elsewhere; ``take_over`` resumes the active runs nobody holds.

If the lease connection itself drops while the replica lives, its leases are released
and another replica may resume a run this one is still advancing: the log's expected
versions then refuse the second writer's append, as without leases.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

import psycopg

from orchestration.log.pg_store import describe
from orchestration.log.store import LogBusyError, LogError
from orchestration.workflow.engine import ACTIVE, Engine

log = logging.getLogger(__name__)

# the first key of the two-key advisory lock space; migrations use the one-key space
LEASE_CLASS = 0x766F78


class RunLeases:
    def __init__(self, url: str, wait_s: float = 30.0, poll_s: float = 0.05,
                 connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.where = describe(url)
        self._wait_s = wait_s
        self._poll_s = poll_s
        self._timeout = max(1, int(connect_timeout_s))
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=self._timeout,
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                application_name="voxgate-leases")
        except psycopg.Error as exc:
            raise LogError(f"cannot reach {self.where} for run leases ({exc})") from exc

    def _call(self, sql: Any, ident: str) -> bool:
        for attempt in (1, 2):
            try:
                row = self._conn.execute(sql, (LEASE_CLASS, ident)).fetchone()
                return row is not None and bool(row[0])
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise LogError(f"{self.where}: run lease for {ident!r} failed ({exc})"
                                   ) from exc
                # the session is gone, and every lease it held with it
                log.warning("run lease connection to %s lost (%s); reconnecting: the runs "
                            "it held may be taken over by another replica", self.where, exc)
                self._held.clear()
                self._conn.close()
                self._conn = self._connect()
            except psycopg.Error as exc:
                raise LogError(f"{self.where}: run lease for {ident!r} failed ({exc})"
                               ) from exc
        raise AssertionError("unreachable")

    def try_hold(self, ident: str) -> bool:
        """Take ``ident``'s lease if no other process holds it (re-entrant here)."""
        with self._lock:
            got = self._call("SELECT pg_try_advisory_lock(%s, hashtext(%s))", ident)
            if got:
                self._held[ident] += 1
            return got

    async def hold(self, ident: str) -> None:
        deadline = time.monotonic() + self._wait_s
        while not self.try_hold(ident):
            if time.monotonic() > deadline:
                raise LogBusyError(f"workflow run {ident!r} is being advanced by another "
                                   f"replica for over {self._wait_s:g} s; try again")
            await asyncio.sleep(self._poll_s)

    def release(self, ident: str) -> None:
        with self._lock:
            if self._held[ident] <= 0:
                return
            self._call("SELECT pg_advisory_unlock(%s, hashtext(%s))", ident)
            self._held[ident] -= 1
            if self._held[ident] == 0:
                del self._held[ident]

    def held_here(self, ident: str) -> bool:
        with self._lock:
            return self._held[ident] > 0

    def close(self) -> None:
        self._conn.close()


async def take_over(engine: Engine, leases: RunLeases) -> list[str]:
    """Resume every active run (mid-step, compensating, rolling back) whose lease no live
    process holds: its replica died. Returns the ids resumed."""
    taken = []
    for view in engine.store.views("wf:").values():
        ident = str(view["id"])
        if view["status"] not in ACTIVE or leases.held_here(ident):
            continue
        if not leases.try_hold(ident):
            continue  # a live replica is advancing it
        try:
            await engine.resume(ident)
            taken.append(ident)
        finally:
            leases.release(ident)
    return taken
