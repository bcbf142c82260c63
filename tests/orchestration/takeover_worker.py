"""A replica on a PostgreSQL log. ``victim`` starts the run and blocks in its step ``b``
(the test SIGKILLs it there); ``heir`` runs ``take_over`` every 50 ms, noting each pass in
its trace, until it has resumed a run, then prints the ids."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from orchestration.log.pg_store import PostgresEventStore
from orchestration.log.views import project
from orchestration.workflow.engine import Engine
from orchestration.workflow.pg_leases import RunLeases, take_over
from tests.orchestration.crash_worker import FLOW
from tests.orchestration.toolkit import Toolkit


async def main(url: str, role: str, trace: Path) -> None:
    kit = Toolkit(trace, block=role == "victim")
    store = PostgresEventStore(url, project)
    leases = RunLeases(url)
    engine = Engine(store, kit.registry, [FLOW], ids=lambda: "victim", leases=leases)
    if role == "victim":
        await engine.start("crashy")  # never returns: step b blocks until the kill
    while not (taken := await take_over(engine, leases)):
        with trace.open("a") as f:
            f.write("pass\n")
        await asyncio.sleep(0.05)
    print(" ".join(taken))
    leases.close()
    store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
