"""One trace per call with spans for turns, STT, the agent and TTS; no text in attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.config import Settings
from gateway.evaluation.client import run_call
from gateway.evaluation.speech import load_prompt
from gateway.observability.tracing import CallTracer
from gateway.server import ServerThread

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerThread, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer = CallTracer(processor=SimpleSpanProcessor(exporter))
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), tracer=tracer)
    with ServerThread(app) as running:
        yield running, exporter


def test_a_call_is_one_trace_with_the_expected_spans(
    traced: tuple[ServerThread, InMemorySpanExporter],
) -> None:
    server, exporter = traced
    pcm, reference = load_prompt("conf-locked")
    result = asyncio.run(run_call(pcm, "browser", server.url, tail_s=10.0))
    assert result.user_transcripts()
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "call"]
    assert len(roots) == 1
    trace_id = roots[0].context.trace_id
    mine = [s for s in spans if s.context.trace_id == trace_id]
    names = [s.name for s in mine]
    for expected in ("call", "turn", "stt", "agent", "tts"):
        assert expected in names, names
    by_id = {s.context.span_id: s for s in mine}
    turn = next(s for s in mine if s.name == "turn")
    stt = next(s for s in mine if s.name == "stt")
    assert stt.parent is not None and by_id[stt.parent.span_id] is turn
    assert turn.parent is not None and by_id[turn.parent.span_id] is roots[0]
    assert stt.end_time is not None and stt.start_time is not None
    assert 0 < (stt.end_time - stt.start_time) / 1e9 < 10
    # nothing a caller said ends up in a trace
    words = {w.strip(".").lower() for w in reference.split()} | {"heard", "voxgate"}
    for span in mine:
        for value in (span.attributes or {}).values():
            if isinstance(value, str):
                assert not (set(value.lower().split()) & words), (span.name, value)
