"""/metrics after a real call, parsed with Prometheus' own parser."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.server import ServerThread

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
    # every delivered turn used one whisper run (the wasted ones are counted beside it)
    assert after["voxgate_stt_runs_total{result=used}"] == after["voxgate_turns_total{}"]
    assert after["voxgate_tts_latency_seconds_count{}"] >= 2
    assert after["voxgate_bulkhead_rejected{pool=stt}"] == 0
    assert after["voxgate_event_log_append_seconds_count{}"] >= 1
    # the client's silence before and after its turn went through the line's noise gate,
    # the turn itself the full way
    gated = after["voxgate_caller_frames_total{path=gated}"]
    full = after["voxgate_caller_frames_total{path=full}"]
    assert gated > 0 and full * 20 >= len(pcm) // 32


def test_back_office_workflow_runs_are_counted_from_the_log(server: ServerThread) -> None:
    """Workflow runs write to the event log, not the bus; their transitions and tool calls
    reach /metrics all the same, labelled apart from the calls' own."""
    before = scrape(server)
    started = httpx.post(f"{server.url}/api/workflows/summarization/runs",
                         json={"input": {"text": "One. Two. Three. Four."}})
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["status"] == "succeeded"
    events = httpx.get(f"{server.url}/api/runs/{run['id']}/events").json()
    entered = sum(1 for e in events if e["type"] == "workflow.transition")
    tools = [e["data"]["tool"] for e in events
             if e["type"] == "step.completed" and "tool" in e["data"]]
    assert entered >= 2 and tools
    after = scrape(server)
    key = "voxgate_workflow_transitions_total{source=workflow}"
    assert after[key] - before.get(key, 0) == entered
    tool = f"voxgate_tool_calls_total{{outcome=succeeded,tool={tools[0]}}}"
    assert after[tool] - before.get(tool, 0) == tools.count(tools[0])
    # the call's own transitions (if any) keep their label
    assert after.get("voxgate_workflow_transitions_total{source=call}", 0) == before.get(
        "voxgate_workflow_transitions_total{source=call}", 0)
