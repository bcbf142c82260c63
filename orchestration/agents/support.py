"""Customer support: troubleshooting playbooks and tickets.

Playbooks (config ``support.playbooks``) list the resolution steps per problem category;
``support.step`` hands the flow one step at a time. ``ticket.create`` opens a ticket:
on the configured helpdesk (``support.helpdesk_url``, a JSON POST answered with
``{"id": ...}``) when there is one, else in the local table (SQLite, or PostgreSQL when
the replicas share a database). The flow calls it
with retry and a circuit breaker; if the helpdesk stays down, the fallback
``ticket.queue`` records the ticket locally, marked ``queued`` for a later sync, so the
caller still gets a reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field

from orchestration.log.tables import Tables, open_tables
from orchestration.patterns.tools import ToolError, ToolRegistry, TransientToolError


class SupportConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    helpdesk_url: str | None = None
    helpdesk_timeout_s: float = Field(3.0, gt=0)
    playbooks: dict[str, list[str]] = Field(default_factory=dict)


class Tickets:
    def __init__(self, tables: Path | str | Tables) -> None:
        """``tables``: open ``Tables``, a SQLite file or a ``postgresql://`` URL."""
        self._t = open_tables(tables)
        self._t.ensure("CREATE TABLE IF NOT EXISTS tickets (id INTEGER PRIMARY KEY, ref TEXT, "
                       "caller TEXT, category TEXT, summary TEXT, status TEXT, created REAL)")

    def add(self, caller: str | None, category: str, summary: str, status: str,
            now: float, ref: str | None = None) -> str:
        """Record a ticket; without ``ref`` it is named after its row (``T1042``), unique
        across the replicas sharing the database."""
        with self._t.transaction() as tx:
            [(ident,)] = tx.rows(
                "INSERT INTO tickets (ref, caller, category, summary, status, created) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (ref, caller, category, summary, status, now))
            if ref is None:
                ref = f"T{1000 + int(ident)}"
                tx.change("UPDATE tickets SET ref=%s WHERE id=%s", (ref, ident))
        return ref

    def all(self) -> list[dict[str, object]]:
        rows = self._t.rows("SELECT ref, caller, category, summary, status FROM tickets "
                            "ORDER BY id")
        keys = ("ref", "caller", "category", "summary", "status")
        return [dict(zip(keys, r, strict=True)) for r in rows]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    category: str
    index: int = Field(0, ge=0)


class StepOut(BaseModel):
    has_step: bool
    text: str = ""
    index: int
    number: int  # 1-based, for speaking
    total: int


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    caller: str | None = None
    category: str = "general"
    summary: str = ""


class TicketOut(BaseModel):
    ref: str
    status: str
    spoken: str


def _spoken_ref(ref: str) -> str:
    return " ".join(ref)  # "T1042" is read "T 1 0 4 2"


def register(registry: ToolRegistry, config: SupportConfig, tickets: Tickets,
             clock: Callable[[], float], client: httpx.AsyncClient | None = None) -> None:
    @registry.tool("support.step", permissions=["support.read"], timeout=1)
    def step(inp: StepIn) -> StepOut:
        """The next resolution step of a category's playbook."""
        steps = config.playbooks.get(inp.category, [])
        has = inp.index < len(steps)
        return StepOut(has_step=has, text=steps[inp.index] if has else "", index=inp.index,
                       number=inp.index + 1, total=len(steps))

    @registry.tool("ticket.create", permissions=["ticket.write"], timeout=config.helpdesk_timeout_s,
                   idempotent=False)
    async def create(inp: TicketIn) -> TicketOut:
        """Open a ticket on the helpdesk (or locally when none is configured)."""
        if config.helpdesk_url is None:
            ref = tickets.add(inp.caller, inp.category, inp.summary, "open", clock())
            return TicketOut(ref=ref, status="open", spoken=_spoken_ref(ref))
        own = client or httpx.AsyncClient(timeout=config.helpdesk_timeout_s)
        try:
            resp = await own.post(config.helpdesk_url, json=inp.model_dump())
        except httpx.HTTPError as exc:
            raise TransientToolError("ticket.create", f"helpdesk unreachable: {exc!r}") from None
        finally:
            if client is None:
                await own.aclose()
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientToolError("ticket.create", f"helpdesk answered {resp.status_code}")
        if resp.status_code >= 400:
            raise ToolError("ticket.create", f"helpdesk refused: {resp.status_code}")
        try:
            ref = str(resp.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise ToolError("ticket.create", "helpdesk answer has no id") from None
        tickets.add(inp.caller, inp.category, inp.summary, "open", clock(), ref=ref)
        return TicketOut(ref=ref, status="open", spoken=_spoken_ref(ref))

    @registry.tool("ticket.queue", permissions=["ticket.write"], timeout=1)
    def queue(inp: TicketIn) -> TicketOut:
        """Record a ticket locally for a later sync (the helpdesk is down)."""
        ref = tickets.add(inp.caller, inp.category, inp.summary, "queued", clock())
        return TicketOut(ref=ref, status="queued", spoken=_spoken_ref(ref))
