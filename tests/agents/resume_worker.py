"""One call's process, for the resume test (tests/agents/test_resume.py).

    python -m tests.agents.resume_worker DATA_DIR SESSION [--resume-from OLD] TURN...

The real agents over a real event log (``DATA_DIR/events.db``, written by the bus's log
writer): greets (or, with ``--resume-from``, carries on the call ``OLD`` from its state in
the log), says each ``TURN`` and prints, one line each, ``said: <text>``. Then it prints
``waiting`` and waits for the test to kill it (a call's process that dies mid-call), or,
with ``--end``, closes the log and exits. With ``--stall-after-booking FILE`` the
calendar writes a booking, then the process writes FILE and stalls inside the tool (a
process that dies after the booking is made, before the log hears of it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

from gateway.evaluation.line import TODAY
from orchestration.agents.agent import CallInfo, Say, UserTurn
from orchestration.agents.scheduling import Calendar
from orchestration.agents.system import AgentSystem
from orchestration.log.buslog import attach_bus
from orchestration.log.events import EventBus
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.views import project

CALLER = "+15005550006"


def _stall_after_booking(calendar: Calendar, marker: Path) -> None:
    book = calendar.book

    def book_then_stall(*args: Any, **kwargs: Any) -> int:
        ident = book(*args, **kwargs)
        marker.write_text(f"booked {ident}")
        threading.Event().wait()  # until SIGKILL
        return ident

    calendar.book = book_then_stall  # type: ignore[method-assign]


def _say(text: str) -> None:
    sys.stdout.write(f"said: {text}\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    data = Path(args.data_dir)
    bus = EventBus()
    store = SQLiteEventStore(data / "events.db", project)
    log = attach_bus(bus, store)

    async def durable() -> None:
        await asyncio.to_thread(log.flush)

    system = AgentSystem(bus, data, today=lambda: TODAY, durable=durable,
                         calls=lambda session: store.view(f"call:{session}"))
    if args.stall_after_booking:
        _stall_after_booking(system.calendar, Path(args.stall_after_booking))
    agent = system.agent(CallInfo(args.session, "twilio", CALLER, resume_from=args.resume_from))
    async for action in agent.greeting():
        if isinstance(action, Say):
            _say(action.text)
    for index, text in enumerate(args.turns, 1):
        async for action in agent.respond(UserTurn(text, 1000, index)):
            if isinstance(action, Say):
                _say(action.text)
    await durable()  # everything this call did is in the log before we say so
    if args.end:
        log.close()
        store.close()
        system.close()
        return
    sys.stdout.write("waiting\n")
    sys.stdout.flush()
    threading.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("session")
    parser.add_argument("turns", nargs="*")
    parser.add_argument("--resume-from")
    parser.add_argument("--end", action="store_true")
    parser.add_argument("--stall-after-booking")
    asyncio.run(main(parser.parse_intermixed_args()))
