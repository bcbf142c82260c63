"""A workflow run's events are masked before they are written, and the run still works
on the real values, across a restart, through the engine and a real SQLite log."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestration.clock import FakeClock
from orchestration.log.redact import redact_data
from orchestration.log.replay import replay
from orchestration.log.sqlite_store import SQLiteEventStore
from orchestration.log.vault import Sealing, Vault
from orchestration.log.views import project
from orchestration.patterns.tools import ToolRegistry
from orchestration.workflow.engine import Engine
from orchestration.workflow.loader import from_dict

CARD = "4111 1111 1111 1111"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0199"

PAY = from_dict({
    "name": "pay", "start": "charge",
    "input": {"card": {"type": "string"}, "email": {"type": "string"}},
    "states": {
        "charge": {"tool": "pay.charge", "input": {"card": "$input.card"}, "next": "confirm"},
        "confirm": {"on": [{"signal": "confirmed", "target": "mail"}]},
        "mail": {"tool": "mail.send", "input": {"to": "$input.email",
                                                "phone": "$signal.data.phone",
                                                "receipt": "$steps.charge.receipt"},
                 "next": "done"},
        "done": {"kind": "end", "output": {"sent_to": "$steps.mail.to"}},
    },
})


class Card(BaseModel):
    card: str


class Receipt(BaseModel):
    receipt: str


class Mail(BaseModel):
    to: str
    phone: str
    receipt: str


class Shop:
    """Real tools that record what they were given."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.registry = ToolRegistry()

        @self.registry.tool("pay.charge")
        def charge(inp: Card) -> Receipt:
            self.seen.append(inp.model_dump())
            return Receipt(receipt=f"paid with the card ending {inp.card[-4:]}, {inp.card}")

        @self.registry.tool("mail.send")
        def send(inp: Mail) -> Mail:
            self.seen.append(inp.model_dump())
            return inp


def engine(store: SQLiteEventStore, shop: Shop, sealing: Sealing | None) -> Engine:
    return Engine(store, shop.registry, [PAY], clock=FakeClock(), rng=random.Random(1),
                  ids=lambda: "run1", sealing=sealing)


def raw_bytes(tmp_path: Path, name: str) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob(f"{name}*"))


async def test_run_events_are_masked_in_the_log_and_the_run_survives_a_restart(
        tmp_path: Path) -> None:
    shop = Shop()
    store = SQLiteEventStore(tmp_path / "events.db", project)
    vault = Vault(tmp_path / "vault.db")
    ident = await engine(store, shop, Sealing(redact_data, vault)).start(
        "pay", {"card": CARD, "email": EMAIL})
    assert shop.seen == [{"card": CARD}]  # the tool got the real number
    assert store.view(f"wf:{ident}")["status"] == "waiting"  # type: ignore[index]
    store.close()
    vault.close()

    # a new process: the run goes on from the log, its input back from the vault
    store = SQLiteEventStore(tmp_path / "events.db", project)
    vault = Vault(tmp_path / "vault.db")
    eng = engine(store, shop, Sealing(redact_data, vault))
    assert (await eng.signal(ident, "confirmed", {"phone": PHONE})).accepted
    assert shop.seen[1] == {"to": EMAIL, "phone": PHONE,
                            "receipt": f"paid with the card ending 1111, {CARD}"}
    view = eng.state(ident)
    assert view["status"] == "succeeded"
    assert view["output"] == {"sent_to": "[email]"}  # what the API shows is masked too

    events = [e.to_dict() for e in store.read()]
    logged = repr(events)
    for secret in (CARD, EMAIL, PHONE, "4111111111111111", "555 0199"):
        assert secret not in logged
    started = events[0]["data"]
    assert started["input"] == {"card": "[card ...1111]", "email": "[email]"}
    assert started["name"] == "pay"  # what the engine needs intact stays intact
    assert [e["stream"] for e in events] == [f"wf:{ident}"] * len(events)
    assert replay(store).ok  # the masked log replays to the stored (masked) views
    assert vault.streams() == []  # a finished run keeps no originals
    store.close()
    vault.close()
    for name in ("events.db", "vault.db"):  # nor does any byte on disk
        on_disk = raw_bytes(tmp_path, name)
        assert CARD.encode() not in on_disk and EMAIL.encode() not in on_disk, name


async def test_without_redaction_the_log_keeps_the_values(tmp_path: Path) -> None:
    shop = Shop()
    store = SQLiteEventStore(tmp_path / "events.db", project)
    ident = await engine(store, shop, None).start("pay", {"card": CARD, "email": EMAIL})
    [started] = [e for e in store.read() if e.type == "workflow.started"]
    assert started.data["input"] == {"card": CARD, "email": EMAIL}
    assert store.view(f"wf:{ident}")["status"] == "waiting"  # type: ignore[index]
    store.close()


async def test_a_finished_run_left_in_the_vault_by_a_crash_is_pruned(tmp_path: Path) -> None:
    shop = Shop()
    store = SQLiteEventStore(tmp_path / "events.db", project)
    vault = Vault(":memory:")
    sealing = Sealing(redact_data, vault)
    ident = await engine(store, shop, sealing).start("pay", {"card": CARD, "email": EMAIL})
    vault.put("wf:gone", {"card": CARD})  # a run whose last event was written, then a crash
    assert vault.streams() == ["wf:gone", f"wf:{ident}"]
    assert sealing.prune(store) == 1
    assert vault.streams() == [f"wf:{ident}"]  # the waiting run keeps what it needs
    store.close()
