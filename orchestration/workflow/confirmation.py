"""Confirmation messages to callers: the ``booking.confirm`` tool and where it sends.

A booking is a saga (docs/agents.md): the slot is reserved, then confirmed by a message
to the caller, and released again if the message cannot be sent. The message goes
through a ``Sender``; the default is ``LocalOutbox``, a table of messages in a SQLite file
(``<data dir>/outbox.db``), or in PostgreSQL when ``VOXGATE_DATABASE_URL`` is set, that an
operator's integration (SMS, email) drains. Sending is
idempotent by key: the engine's idempotency key for the step (``<session>/<run>/<step>``)
names the message, so a step run again after a resume sends nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from orchestration.log.tables import Tables, open_tables
from orchestration.patterns.tools import ToolError, ToolRegistry


class Sender(Protocol):
    """Delivers one message; returns its id. Raising means it was not sent."""

    name: str

    def send(self, to: str, text: str, key: str) -> str: ...


class LocalOutbox:
    """Messages kept in a table until something delivers them: one row per key, whichever
    replica sends it."""

    name = "outbox"

    def __init__(self, tables: Path | str | Tables,
                 clock: Callable[[], float] = time.time) -> None:
        """``tables``: a SQLite file, a ``postgresql://`` URL, or open ``Tables`` (then
        ``close`` leaves them open for their owner)."""
        self._clock = clock
        self._owned = isinstance(tables, Path | str)
        self._t = open_tables(tables)
        self._t.ensure("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, key TEXT "
                       "UNIQUE NOT NULL, recipient TEXT NOT NULL, text TEXT NOT NULL, "
                       "created REAL NOT NULL)")

    def send(self, to: str, text: str, key: str) -> str:
        with self._t.transaction() as tx:
            tx.change("INSERT INTO outbox (key, recipient, text, created) VALUES "
                      "(%s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
                      (key, to, text, self._clock()))
            [(ident,)] = tx.rows("SELECT id FROM outbox WHERE key=%s", (key,))
        return f"msg-{ident}"

    def messages(self) -> list[dict[str, object]]:
        rows = self._t.rows("SELECT id, key, recipient, text FROM outbox ORDER BY id")
        return [dict(zip(("id", "key", "to", "text"), r, strict=True)) for r in rows]

    def close(self) -> None:
        if self._owned:
            self._t.close()


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    to: str | None = None  # the caller's number; None: an anonymous line, nothing to send
    text: str = Field(min_length=1)
    key: str = Field(min_length=1)


class ConfirmOut(BaseModel):
    sent: bool
    id: str | None = None
    via: str


def register(registry: ToolRegistry, sender: Sender) -> None:
    @registry.tool("booking.confirm", permissions=["booking.notify"], timeout=5)
    def confirm(inp: ConfirmIn) -> ConfirmOut:
        """Send the caller the confirmation of a booking (by the configured sender)."""
        if not inp.to:
            return ConfirmOut(sent=False, via=sender.name)
        try:
            ident = sender.send(inp.to, inp.text, inp.key)
        except Exception as exc:
            raise ToolError("booking.confirm", f"{sender.name} could not send: "
                            f"{type(exc).__name__}: {exc}",
                            transient=isinstance(exc, ConnectionError | TimeoutError)) from None
        return ConfirmOut(sent=True, id=ident, via=sender.name)
