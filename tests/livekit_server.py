"""pytest fixture for a LiveKit server (gateway/servers/livekit.py): ``livekit_server``, one
per test session. ``VOXGATE_SKIP_LIVEKIT=1`` skips the tests that need it; a missing
binary fails them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from gateway.servers.livekit import MISSING, SKIP_ENV, LiveKitServer, find_binary, running

__all__ = ["LiveKitServer", "livekit_server"]


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the LiveKit tests are skipped")
    if find_binary() is None:
        pytest.fail(MISSING)
    with running() as server:
        yield server
