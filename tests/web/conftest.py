"""A real gateway on a loopback port, and one real call through it, shared by the web tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import CallResult, run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread


@pytest.fixture(scope="session")
def web_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("web-data")


@pytest.fixture(scope="session")
def gateway_server(web_data_dir: Path) -> Iterator[ServerThread]:
    settings = Settings(data_dir=web_data_dir, agent="basic")  # its answers echo the caller
    settings.voice.turn.reprompt_after_s = 20.0  # no reprompts in the middle of a test
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="session")
def real_call(gateway_server: ServerThread) -> CallResult:
    pcm, _ = load_prompt("conf-locked")
    return asyncio.run(run_call(pcm, "browser", gateway_server.url, tail_s=4.0))


@pytest.fixture(scope="session")
def call_events(gateway_server: ServerThread, real_call: CallResult) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway_server.url}/api/sessions/{real_call.session_id}/events")
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()
    return events
