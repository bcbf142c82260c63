"""Structured JSON log lines carry session and trace ids and never a phone number."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from gateway.app import create_app
from gateway.config import Settings
from gateway.observability.logs import configure_logging
from gateway.server import ServerThread
from tests.gateway.test_bad_input import closed_with, start_message

pytestmark = pytest.mark.slow


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("info", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


async def bad_twilio_call(url: str) -> None:
    async with connect(url.replace("http://", "ws://") + "/ws/twilio") as ws:
        await ws.send(start_message(call_sid="CA-logs"))
        await asyncio.sleep(0.5)
        await ws.send('{"event": "flurble", "streamSid": "MZ1", "note": "+1 415 555 0199"}')
        await ws.send(
            '{"event": "stop", "sequenceNumber": "3", "streamSid": "MZ1", '
            '"stop": {"accountSid": "AC1", "callSid": "CA-logs"}}'
        )
        await closed_with(ws)


def test_log_lines_are_json_with_session_and_trace(
    captured: io.StringIO, tmp_path_factory: pytest.TempPathFactory
) -> None:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    with ServerThread(app) as server:
        asyncio.run(bad_twilio_call(server.url))
        logging.getLogger("gateway.test").warning("caller said call me at +1 415 555 0199")
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"event", "level", "timestamp", "logger"} <= line.keys()
    bad = [line for line in lines if "bad twilio message" in line["event"]]
    assert bad, [line["event"] for line in lines]
    assert bad[0]["level"] == "warning"
    assert len(bad[0]["session_id"]) == 16
    assert len(bad[0]["trace_id"]) == 32
    assert "555 0199" not in captured.getvalue()
    assert any("[phone ...0199]" in line["event"] for line in lines)
