"""Cron schedules: start a workflow at the times its ``schedule.cron`` names (UTC).

The next due time is an event (``schedule.armed`` on stream ``sched:<workflow>``), so a
restarted process picks up where the last one left off. A due run is first *claimed*
(``schedule.fired`` appended with the stream version last seen: of two processes ticking
one log, only one wins) and then started under the id ``<workflow>-<due>``; a claim whose
workflow never started (a crash in between) is started on the next tick. Runs missed
while nothing was running are collapsed into one catch-up run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from orchestration.log.store import ConcurrentWriteError, NewEvent
from orchestration.workflow.engine import Engine


def next_due(cron: str, after: float) -> float:
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(cron, start).get_next(datetime).timestamp())


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def tick(self) -> list[str]:
        """Arm new schedules and start every due run; returns the started instance ids."""
        started: list[str] = []
        now = self.engine.clock.now()
        store = self.engine.store
        for name, defn in sorted(self.engine.definitions.items()):
            if defn.schedule is None:
                continue
            stream = f"sched:{name}"
            view = store.view(stream)
            version = 0 if view is None else int(view["events"])
            try:
                if view is not None and view["last_instance"] and store.view(
                        f"wf:{view['last_instance']}") is None:
                    ident = view["last_instance"]
                    await self.engine.start(name, defn.schedule.input, ident)
                    started.append(ident)
                if view is None or view["due"] is None:
                    due = next_due(defn.schedule.cron, now)
                    store.append([NewEvent(stream, "schedule.armed",
                                           {"due": due, "cron": defn.schedule.cron}, now)],
                                 {stream: version})
                    continue
                if view["due"] > now:
                    continue
                ident = f"{name}-{int(view['due'])}"
                store.append([
                    NewEvent(stream, "schedule.fired", {"due": view["due"], "instance": ident},
                             now),
                    NewEvent(stream, "schedule.armed",
                             {"due": next_due(defn.schedule.cron, now),
                              "cron": defn.schedule.cron}, now),
                ], {stream: version})
            except ConcurrentWriteError:
                continue  # another process armed or claimed it first
            await self.engine.start(name, defn.schedule.input, ident)
            started.append(ident)
        return started
