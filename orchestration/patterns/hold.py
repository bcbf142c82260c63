"""Effects held until the caller's turn is confirmed.

A voice session may hand the agent a turn before the turn has ended (an *early* turn: the
caller paused after what reads as a finished sentence, and the closing silence is still
being waited out). Such a turn carries a future (``UserTurn.confirmed``) that the session
resolves True when the turn ends with the same words and False when the caller went on.
The agent sets it in ``TURN_CONFIRMED`` for the turn's work (tasks it starts inherit it):
whatever acts outside the call (a tool that writes, a note kept) waits for it here, so a
turn that is dropped never books, cancels or opens anything. Reading goes ahead at once.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from orchestration.patterns.tools import ToolError

TURN_CONFIRMED: ContextVar[asyncio.Future[bool] | None] = ContextVar(
    "voxgate_turn_confirmed", default=None)


class TurnDiscarded(ToolError):
    """The turn this effect belonged to was dropped: the caller went on talking."""

    def __init__(self, tool: str) -> None:
        super().__init__(tool, "held for the caller's turn, which was dropped", transient=False)


def pending() -> asyncio.Future[bool] | None:
    """The current turn's confirmation, if it is still awaited."""
    confirmed = TURN_CONFIRMED.get()
    return confirmed if confirmed is not None and not confirmed.done() else None


async def hold_tool(name: str) -> None:
    """Before a tool that acts: wait for the turn; raise ``TurnDiscarded`` if it was dropped."""
    confirmed = TURN_CONFIRMED.get()
    # shielded: this waiter going away must not cancel the session's future
    if confirmed is not None and not await asyncio.shield(confirmed):
        raise TurnDiscarded(name)
