"""Run leases: which process is advancing a workflow run just now.

With one process (SQLite) the engine's own per-run lock is enough. With several replicas
on one PostgreSQL log, a run is advanced by whichever replica holds its lease
(``orchestration/workflow/pg_leases.py``), and a run whose holder died is taken over by another.
"""

from __future__ import annotations

from typing import Protocol


class Leases(Protocol):
    async def hold(self, ident: str) -> None:
        """Wait until this process holds run ``ident``'s lease (re-entrant); raises
        ``LogBusyError`` if another process keeps it longer than the lease wait."""
        ...

    def release(self, ident: str) -> None:
        """Give back one hold of ``ident``'s lease."""
        ...
