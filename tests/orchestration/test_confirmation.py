"""The booking confirmation tool: messages land in the local outbox once per key, and a
sender that fails makes the tool fail (what the booking saga compensates)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.patterns.tools import ToolError, ToolRegistry
from orchestration.workflow.confirmation import LocalOutbox, register


class BrokenSender:
    """A fake sender whose delivery always fails (an SMS gateway that is down)."""

    name = "sms"

    def send(self, to: str, text: str, key: str) -> str:
        raise ConnectionError("gateway unreachable")


async def test_a_confirmation_is_kept_once_per_key(tmp_path: Path) -> None:
    outbox = LocalOutbox(tmp_path / "outbox.db", clock=lambda: 5.0)
    reg = ToolRegistry()
    register(reg, outbox)
    inp = {"to": "+15005550006", "text": "Booked: Tuesday at 3 PM.", "key": "c1/scheduling-1/c"}
    first = await reg.invoke("booking.confirm", inp, ["booking.notify"])
    again = await reg.invoke("booking.confirm", inp, ["booking.notify"])
    assert first == again == {"sent": True, "id": "msg-1", "via": "outbox"}
    assert outbox.messages() == [{"id": 1, "key": "c1/scheduling-1/c", "to": "+15005550006",
                                  "text": "Booked: Tuesday at 3 PM."}]
    anonymous = await reg.invoke("booking.confirm", {**inp, "to": None, "key": "k2"},
                                 ["booking.notify"])
    assert anonymous == {"sent": False, "id": None, "via": "outbox"}
    outbox.close()


async def test_a_sender_that_fails_fails_the_tool() -> None:
    reg = ToolRegistry()
    register(reg, BrokenSender())
    with pytest.raises(ToolError) as err:
        await reg.invoke("booking.confirm", {"to": "+1555", "text": "x", "key": "k"},
                         ["booking.notify"])
    assert str(err.value) == ("tool 'booking.confirm': sms could not send: ConnectionError: "
                              "gateway unreachable")
    assert err.value.transient
