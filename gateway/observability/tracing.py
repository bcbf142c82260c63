"""OpenTelemetry traces, built by an observer of the event bus.

One trace per call: a ``call`` root span from ``session.started`` to ``session.ended``, a
``turn`` span per caller turn (end of speech -> first agent audio), and inside it ``stt``,
``agent`` (transcript -> first reply text; for a turn the agent got early, from then, with
``voxgate.early``), ``tool`` calls and ``tts`` spans. Spans are
placed at the times the events record (each event carries how long its step took), so the
call path does no tracing work at all.

Attributes carry ids, counts and durations only, never text: transcripts and replies may
hold personal data, and a trace backend is the wrong place for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from orchestration.log.events import Event, EventBus


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _CallSpans:
    root: Span
    turn: Span | None = None
    turn_text_at: float | None = None  # stt.final time, start of the agent span
    agent_open: bool = False
    # an early turn (voice.early): when the agent got it, and when it had its reply
    early_at: float | None = None
    early_reply_at: float | None = None
    tools: dict[str, tuple[Span, int]] = field(default_factory=dict)


class CallTracer:
    def __init__(
        self, exporter: SpanExporter | None = None, processor: SpanProcessor | None = None
    ) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "voxgate"}))
        if processor is not None:
            self.provider.add_span_processor(processor)
        elif exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("voxgate.calls")
        self._calls: dict[str, _CallSpans] = {}

    def trace_id(self, session_id: str) -> str | None:
        spans = self._calls.get(session_id)
        if spans is None:
            return None
        return format(spans.root.get_span_context().trace_id, "032x")

    def _child(self, spans: _CallSpans, name: str, start: float, under_turn: bool = True) -> Span:
        parent = spans.turn if under_turn and spans.turn is not None else spans.root
        ctx = trace.set_span_in_context(parent)
        span = self.tracer.start_span(name, context=ctx, start_time=_ns(start))
        assert isinstance(span, Span)
        return span

    def observe(self, event: Event) -> None:
        kind, data, ts = event.type, event.data, event.ts
        if kind == "session.started":
            root = self.tracer.start_span("call", start_time=_ns(ts))
            assert isinstance(root, Span)
            root.set_attribute("voxgate.session_id", event.session_id)
            root.set_attribute("voxgate.protocol", str(data.get("protocol", "")))
            self._calls[event.session_id] = _CallSpans(root)
            return
        spans = self._calls.get(event.session_id)
        if spans is None:
            return
        if kind == "vad.speech_stopped":
            self._end_turn(spans, ts)
            spans.turn = self._child(spans, "turn", ts, under_turn=False)
            spans.turn.set_attribute("voxgate.speech_ms", int(data.get("speech_ms", 0)))
        elif kind == "stt.final" and data.get("source") != "text":
            latency = float(data.get("latency_ms", 0.0)) / 1000
            span = self._child(spans, "stt", ts - latency)
            span.set_attribute("voxgate.audio_ms", int(data.get("audio_ms", 0)))
            span.end(end_time=_ns(ts))
            spans.turn_text_at = ts
            spans.agent_open = "early_ms" not in data or not self._early_agent(spans, ts)
        elif kind == "agent.reply" and spans.agent_open and spans.turn_text_at is not None:
            span = self._child(spans, "agent", spans.turn_text_at)
            span.end(end_time=_ns(ts))
            spans.agent_open = False
        elif kind == "agent.reply" and spans.early_at is not None:
            spans.early_reply_at = spans.early_reply_at or ts
        elif kind in ("agent.early", "agent.early_dropped"):
            spans.early_at = ts if kind == "agent.early" else None
            spans.early_reply_at = None
        elif kind == "tool.called":
            key = str(data.get("call_id", data.get("tool", "?")))
            span = self._child(spans, "tool", ts)
            span.set_attribute("voxgate.tool", str(data.get("tool", "?")))
            spans.tools[key] = (span, event.seq)
        elif kind in ("tool.succeeded", "tool.failed"):
            key = str(data.get("call_id", data.get("tool", "?")))
            opened = spans.tools.pop(key, None)
            if opened is not None:
                opened[0].set_attribute("voxgate.outcome", kind.split(".", 1)[1])
                opened[0].end(end_time=_ns(ts))
        elif kind == "tts.started":
            synth = float(data.get("synth_ms", 0.0)) / 1000
            span = self._child(spans, "tts", ts - synth)
            span.set_attribute("voxgate.audio_ms", int(data.get("audio_ms", 0)))
            span.end(end_time=_ns(ts))
        elif kind == "turn.latency" and spans.turn is not None:
            spans.turn.set_attribute("voxgate.total_ms", float(data.get("total_ms", 0.0)))
            self._end_turn(spans, ts)
        elif kind == "tts.interrupted" and spans.turn is None:
            spans.root.add_event("barge_in", {"voxgate.detect_ms": int(data.get("detect_ms", 0))})
        elif kind == "session.ended":
            self._end_turn(spans, ts)
            for span, _ in spans.tools.values():
                span.end(end_time=_ns(ts))
            spans.root.set_attribute("voxgate.turns", int(data.get("turns", 0)))
            spans.root.end(end_time=_ns(ts))
            del self._calls[event.session_id]

    def _early_agent(self, spans: _CallSpans, ts: float) -> bool:
        """The agent span of a turn it got early: from then to its reply (or now)."""
        if spans.early_at is None:
            return False
        span = self._child(spans, "agent", spans.early_at)
        span.set_attribute("voxgate.early", True)
        span.end(end_time=_ns(spans.early_reply_at or ts))
        spans.early_at = spans.early_reply_at = None
        return True

    @staticmethod
    def _end_turn(spans: _CallSpans, ts: float) -> None:
        if spans.turn is not None:
            spans.turn.end(end_time=_ns(ts))
            spans.turn = None

    def attach(self, bus: EventBus) -> Callable[[], None]:
        return bus.subscribe(self.observe)

    def shutdown(self) -> None:
        self.provider.shutdown()


def otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)
