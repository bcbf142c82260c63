"""/metrics after a real call, parsed with Prometheus' own parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.client import run_call
from gateway.config import Settings
from gateway.server import ServerThread
from tests.speech import load_prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread(create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))) as running:
        yield running


def scrape(server: ServerThread) -> dict[str, float]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def test_metrics_follow_a_call(server: ServerThread) -> None:
    before = scrape(server)
    assert before["voxgate_calls_active{}"] == 0
    assert "voxgate_bulkhead_queued{pool=stt}" in before
    pcm, _ = load_prompt("conf-locked")
    asyncio.run(run_call(pcm, "twilio", server.url, tail_s=10.0))
    after = scrape(server)
    assert after["voxgate_calls_total{protocol=twilio}"] == before.get(
        "voxgate_calls_total{protocol=twilio}", 0
    ) + 1
    assert after["voxgate_calls_active{}"] == 0
    assert after["voxgate_turns_total{}"] >= 1
    assert after["voxgate_response_latency_seconds_count{}"] >= 1
    assert 0 < after["voxgate_response_latency_seconds_sum{}"] < 30
    assert after["voxgate_stt_latency_seconds_count{}"] >= 1
    assert after["voxgate_tts_latency_seconds_count{}"] >= 2
    assert after["voxgate_bulkhead_rejected{pool=stt}"] == 0
    assert after["voxgate_event_log_append_seconds_count{}"] >= 1
