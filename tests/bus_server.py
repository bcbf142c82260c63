"""pytest fixture for a NATS server of a test's own (gateway/servers/bus.py), for the live
bus between gateway nodes; ``VOXGATE_SKIP_BUS=1`` skips the tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.servers.bus import SKIP_ENV, BusServer, find, missing, running

__all__ = ["BusServer", "bus_server"]


@pytest.fixture
def bus_server() -> Iterator[BusServer]:
    """A NATS server of the test's own (tests kill and restart it)."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the live bus tests are skipped")
    if find("nats") is None:
        pytest.fail(missing("nats"))
    with running("nats") as server:
        yield server
